//! Format-preserving tokens.
//!
//! A token has as many digits as the card number and the same last four, so
//! receipts, reports and apps that expect a card-shaped value keep working.
//! The other digits come from HMAC-SHA-256 of the number under the node's
//! `card-token` key (in the host keystore: this plugin never sees it), so the
//! same card always gives the same token on nodes sharing the key, and
//! nobody without the key can go from token to card or check a guess. Every
//! token deliberately fails the Luhn check, so a token can never be mistaken
//! for (or accepted as) a real card number.

use crate::card::luhn_valid;

/// Digits from a keyed digest. `digest(counter)` must return the HMAC of
/// the card number with that counter; more blocks are asked for only if one
/// block's bytes are not enough (rejection sampling keeps digits uniform).
pub fn token_digits<E: From<String>>(
    count: usize,
    mut digest: impl FnMut(u8) -> Result<Vec<u8>, E>,
) -> Result<String, E> {
    let mut digits = String::with_capacity(count);
    let mut counter = 0u8;
    while digits.len() < count {
        for byte in digest(counter)? {
            // 250 is the largest multiple of 10 below 256.
            if byte < 250 && digits.len() < count {
                digits.push(char::from(b'0' + byte % 10));
            }
        }
        counter = counter
            .checked_add(1)
            .ok_or_else(|| E::from("the key gave no usable digits".to_string()))?;
    }
    Ok(digits)
}

/// The token for a card number whose keyed digits are `digits`.
pub fn format_token(pan: &str, digits: &str) -> String {
    let keep = &pan[pan.len() - 4..];
    let mut token: Vec<u8> = format!("{digits}{keep}").into_bytes();
    if luhn_valid(std::str::from_utf8(&token).unwrap_or_default()) {
        // Changing one digit always changes the Luhn sum.
        token[0] = b'0' + (token[0] - b'0' + 1) % 10;
    }
    String::from_utf8(token).unwrap_or_default()
}

/// Whether `text` looks like a token this plugin made.
pub fn is_token(text: &str) -> bool {
    (12..=19).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) && !luhn_valid(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_length_and_last_four_and_fail_luhn() {
        let pan = "4111111111111111";
        let digits = token_digits::<String>(12, |counter| Ok(vec![counter.wrapping_add(7); 40]))
            .expect("digits");
        let token = format_token(pan, &digits);
        assert_eq!(token.len(), pan.len());
        assert!(token.ends_with("1111"));
        assert!(!luhn_valid(&token));
        assert!(is_token(&token));
        assert!(!is_token(pan));
    }

    #[test]
    fn rejection_sampling_asks_for_more_when_needed() {
        let mut calls = 0;
        let digits = token_digits::<String>(5, |counter| {
            calls += 1;
            Ok(if counter == 0 {
                vec![255; 32]
            } else {
                vec![3; 32]
            })
        })
        .expect("digits");
        assert_eq!(digits, "33333");
        assert_eq!(calls, 2);
    }
}
