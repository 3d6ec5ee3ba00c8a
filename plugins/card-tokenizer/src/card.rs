//! Card checks: number, brand, expiry, security code.
//!
//! Nothing here ever puts the card number into an error message: a message
//! may be logged by the node, and the number must never be.

use outpost_sdk::payment_tokenizer::CardBrand;

/// The Luhn (mod 10) checksum over a string of ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (position, byte) in digits.bytes().rev().enumerate() {
        let mut digit = u32::from(byte - b'0');
        if position % 2 == 1 {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
    }
    sum % 10 == 0
}

fn prefix(pan: &str, digits: usize) -> u32 {
    pan.get(..digits).and_then(|p| p.parse().ok()).unwrap_or(0)
}

/// The brand from the issuer identification number, and the lengths it uses.
pub fn brand(pan: &str) -> (CardBrand, &'static [usize]) {
    let p1 = prefix(pan, 1);
    let p2 = prefix(pan, 2);
    let p3 = prefix(pan, 3);
    let p4 = prefix(pan, 4);
    let p6 = prefix(pan, 6);
    const SIXTEEN_TO_NINETEEN: &[usize] = &[16, 17, 18, 19];
    if p2 == 34 || p2 == 37 {
        (CardBrand::Amex, &[15])
    } else if p1 == 4 {
        (CardBrand::Visa, &[13, 16, 19])
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        (CardBrand::Mastercard, &[16])
    } else if p4 == 6011 || (644..=649).contains(&p3) || p2 == 65 || (622126..=622925).contains(&p6)
    {
        (CardBrand::Discover, SIXTEEN_TO_NINETEEN)
    } else if (3528..=3589).contains(&p4) {
        (CardBrand::Jcb, SIXTEEN_TO_NINETEEN)
    } else if p2 == 62 {
        (CardBrand::Unionpay, SIXTEEN_TO_NINETEEN)
    } else if p2 == 50 || (56..=69).contains(&p2) {
        (CardBrand::Maestro, &[12, 13, 14, 15, 16, 17, 18, 19])
    } else {
        (CardBrand::Other, &[12, 13, 14, 15, 16, 17, 18, 19])
    }
}

pub fn brand_name(brand: CardBrand) -> &'static str {
    match brand {
        CardBrand::Visa => "Visa",
        CardBrand::Mastercard => "Mastercard",
        CardBrand::Amex => "American Express",
        CardBrand::Discover => "Discover",
        CardBrand::Jcb => "JCB",
        CardBrand::Unionpay => "UnionPay",
        CardBrand::Maestro => "Maestro",
        CardBrand::Other => "card",
    }
}

/// Checks the card number; the error names the rule, never the number.
pub fn check_pan(pan: &str) -> Result<CardBrand, String> {
    if pan.is_empty() || !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err("card.pan: digits only, with no spaces or dashes".into());
    }
    if !(12..=19).contains(&pan.len()) {
        return Err(format!(
            "card.pan: a card number has 12 to 19 digits, not {}",
            pan.len()
        ));
    }
    if !luhn_valid(pan) {
        return Err("card.pan: fails the Luhn check; it was probably mistyped".into());
    }
    let (brand, lengths) = brand(pan);
    if !lengths.contains(&pan.len()) {
        return Err(format!(
            "card.pan: {} numbers have {} digits, not {}",
            brand_name(brand),
            lengths
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
            pan.len()
        ));
    }
    Ok(brand)
}

/// Checks the expiry against `today` (year, month): a card is good through
/// the last day of its expiry month. With no believable date (see
/// [`today`]) only the form is checked: a box whose clock lost its time must
/// not refuse good cards, and the issuer judges expiry when the payment
/// reaches it.
pub fn check_expiry(month: u8, year: u16, today: Option<(u16, u8)>) -> Result<(), String> {
    if !(1..=12).contains(&month) {
        return Err(format!(
            "card.expiry-month: {month} is not a month (1 to 12)"
        ));
    }
    if !(2000..=2099).contains(&year) {
        return Err(format!(
            "card.expiry-year: {year} is not a four-digit year such as 2028"
        ));
    }
    let Some(today) = today else {
        return Ok(());
    };
    if (year, month) < today {
        return Err(format!("card: expired at the end of {month:02}/{year}"));
    }
    if year > today.0 + 20 {
        return Err(format!(
            "card.expiry-year: {year} is more than 20 years away"
        ));
    }
    Ok(())
}

/// The security code is 3 digits, 4 for American Express.
pub fn check_security_code(code: &str, brand: CardBrand) -> Result<(), String> {
    let length = if brand == CardBrand::Amex { 4 } else { 3 };
    if code.len() != length || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "card.security-code: {} cards have a {length}-digit code",
            brand_name(brand)
        ));
    }
    Ok(())
}

/// No card in use expires before this (year, month): this plugin was
/// released after it. A clock that reads earlier lost its time (a box woken
/// after a power cut reads 1970).
const EARLIEST_BELIEVABLE: (u16, u8) = (2026, 1);

/// (year, month) now, from the wall clock, in UTC, or `None` when the clock
/// cannot be believed.
pub fn today() -> Option<(u16, u8)> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Some(civil_month(seconds)).filter(|month| *month >= EARLIEST_BELIEVABLE)
}

/// (year, month) of `seconds` since the Unix epoch, in UTC.
fn civil_month(seconds: u64) -> (u16, u8) {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        u16::try_from(year).unwrap_or(u16::MAX),
        u8::try_from(month).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_card_numbers_get_their_brands() {
        for (pan, expected) in [
            ("4111111111111111", CardBrand::Visa),
            ("4012888888881881", CardBrand::Visa),
            ("5555555555554444", CardBrand::Mastercard),
            ("2223003122003222", CardBrand::Mastercard),
            ("378282246310005", CardBrand::Amex),
            ("6011111111111117", CardBrand::Discover),
            ("3530111333300000", CardBrand::Jcb),
            ("6200000000000005", CardBrand::Unionpay),
            ("6759649826438453", CardBrand::Maestro),
        ] {
            assert_eq!(check_pan(pan), Ok(expected), "{pan}");
        }
    }

    #[test]
    fn bad_numbers_are_refused_without_repeating_them() {
        for pan in [
            "4111111111111112",
            "41111111111",
            "4111 1111 1111 1111",
            "",
            "3782822463100050",
        ] {
            let error = check_pan(pan).expect_err(pan);
            assert!(pan.is_empty() || !error.contains(pan), "{error}");
        }
    }

    #[test]
    fn expiry_and_security_code() {
        assert!(check_expiry(12, 2026, Some((2026, 11))).is_ok());
        assert!(check_expiry(11, 2026, Some((2026, 11))).is_ok());
        assert!(check_expiry(10, 2026, Some((2026, 11))).is_err());
        assert!(check_expiry(13, 2027, Some((2026, 11))).is_err());
        assert!(check_expiry(1, 27, Some((2026, 11))).is_err());
        assert!(check_security_code("123", CardBrand::Visa).is_ok());
        assert!(check_security_code("1234", CardBrand::Visa).is_err());
        assert!(check_security_code("1234", CardBrand::Amex).is_ok());
        assert!(check_security_code("12a", CardBrand::Visa).is_err());
        let (year, month) = today().expect("this machine's clock is right");
        assert!(year >= 2026 && (1..=12).contains(&month));
    }

    #[test]
    fn a_clock_that_lost_its_time_does_not_refuse_good_cards() {
        // A box woken in 1970 after a power cut.
        assert_eq!(civil_month(3_600), (1970, 1));
        assert!(Some(civil_month(3_600)) < Some(EARLIEST_BELIEVABLE));
        assert!(check_expiry(12, 2030, None).is_ok());
        // Form is still checked.
        assert!(check_expiry(13, 2030, None).is_err());
        assert_eq!(civil_month(1_796_083_200), (2026, 12));
    }
}
