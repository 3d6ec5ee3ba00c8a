//! Card numbers in what plugins put out.
//!
//! A payment tokenizer is code the node did not write and cannot read, and it
//! sees the card. The node cannot stop it from remembering the number, but it
//! decides where the plugin's words go: its result, its log lines, its
//! standard output, its `kv` writes and its outbox messages. Two checks:
//!
//! - [`CardGuard`], while a `tokenize` call runs. The node knows the card, so
//!   it looks for *this* card in everything the call tries to put out and
//!   refuses it: the kv write or outbox message fails with an error the
//!   plugin sees, the log line or output is withheld, and the call fails, so
//!   its result (and the `payment.tokenized` event) goes nowhere either.
//! - [`mask_card_numbers`], for every plugin of every kind: any digit run that
//!   looks like a card number (13 to 19 digits that pass the Luhn check) is
//!   masked in log lines and captured output before the node writes them.
//!
//! # What counts as carrying the card
//!
//! A text carries the card when some run of its digits holds [`RUN_DIGITS`]
//! (8) consecutive digits of the card number that are not among its last
//! four. Between two digits of a run there may be up to [`MAX_GAP`] bytes
//! that are neither letters nor digits, so `4111 1111`, `4111-1111`,
//! `4.1.1.1.1.1.1.1` and a JSON array of digits are runs too.
//!
//! Why that rule:
//!
//! - The last four are public: they are in `last-four`, on every receipt, and
//!   in the reference tokenizer's tokens, which keep them in place. A rule
//!   of seven digits counting them would refuse 1 honest token in 1,000 (the
//!   three digits before the last four match the card's by chance).
//! - Eight digits is the shortest run that random digits almost never match
//!   by chance: a 16-digit token has 9 runs of eight, the card 5 outside its
//!   last four, so an unrelated token matches with odds of about 45 in 10^8,
//!   and an honest reference token (random digits, then the last four) the
//!   same. Seven would be 1 in 170,000 cards refused for nothing.
//! - Seven digits of the card in a row or fewer are what PCI DSS allows on a
//!   display anyway (the first six), or a fragment too short to tell from any
//!   other number. The whole number, the number with its last four masked,
//!   or any eight-digit stretch of its first digits is caught.
//!
//! Not caught, by design of a content check: the number split into pieces
//! shorter than eight across separate outputs, reversed, shifted digit by
//! digit, hex or base64 of its digits, encrypted with the plugin's keystore
//! key, or sent over `http` if the operator granted it. Those need intent, and
//! intent is answered by review and signing, not by pattern matching. The
//! security code and the cardholder's name are not looked for: three digits
//! and a name are too common in honest text to refuse on.

use crate::sandbox::CallState;
use crate::sandbox::output::OutputCapture;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use wasmtime::component::Val;

/// How many consecutive digits of the card (outside its last four) a text
/// must hold to carry it.
pub const RUN_DIGITS: usize = 8;
/// The most non-alphanumeric bytes read through between two digits of a run.
pub const MAX_GAP: usize = 3;
/// The fewest digits the node treats as a card number to guard: the WIT
/// contract's shortest PAN.
pub const MIN_PAN_DIGITS: usize = 12;

/// The card number of one call, and what the call tried to do with it.
#[derive(Debug)]
pub struct CardGuard {
    /// Every run of [`RUN_DIGITS`] digits of the card outside its last four,
    /// as numbers, sorted.
    windows: Vec<u32>,
    last_four: [u8; 4],
    /// Where the plugin tried to put the card, in order, for the call's error.
    refused: Mutex<Vec<String>>,
}

impl CardGuard {
    /// A guard for `pan`, or `None` when it has fewer than
    /// [`MIN_PAN_DIGITS`] digits: that is no card, and the plugin must refuse
    /// it. Characters other than digits are ignored, as a plugin would.
    pub fn new(pan: &str) -> Option<CardGuard> {
        let digits: Vec<u8> = pan
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect();
        if digits.len() < MIN_PAN_DIGITS {
            return None;
        }
        let (hidden, last) = digits.split_at(digits.len() - 4);
        let mut windows: Vec<u32> = hidden.windows(RUN_DIGITS).map(number).collect();
        windows.sort_unstable();
        windows.dedup();
        let mut last_four = [0u8; 4];
        for (slot, digit) in last_four.iter_mut().zip(last) {
            *slot = b'0' + digit;
        }
        Some(CardGuard {
            windows,
            last_four,
            refused: Mutex::new(Vec::new()),
        })
    }

    /// Whether `bytes` carry the card (see the module's rule). One pass, no
    /// allocation: the last [`RUN_DIGITS`] digits of the current run are
    /// kept as a number and looked up.
    pub fn carries(&self, bytes: &[u8]) -> bool {
        const KEEP: u32 = 10u32.pow(RUN_DIGITS as u32 - 1);
        let mut window = 0u32;
        let mut run = 0usize;
        let mut gap = 0usize;
        for &byte in bytes {
            if byte.is_ascii_digit() {
                window = (window % KEEP) * 10 + u32::from(byte - b'0');
                run += 1;
                gap = 0;
                if run >= RUN_DIGITS && self.windows.binary_search(&window).is_ok() {
                    return true;
                }
            } else {
                gap += 1;
                if byte.is_ascii_alphabetic() || gap > MAX_GAP {
                    run = 0;
                }
            }
        }
        false
    }

    /// Whether `text` is exactly the card's last four digits.
    pub fn is_last_four(&self, text: &str) -> bool {
        text.as_bytes() == self.last_four
    }

    /// Notes that the plugin tried to put the card in `channel` ("a kv
    /// write"), for the call's error.
    pub fn refuse(&self, channel: impl Into<String>) {
        let channel = channel.into();
        tracing::warn!(
            target: crate::capabilities::log::TARGET,
            "refused {channel}: it carried the card number of this call"
        );
        self.lock().push(channel);
    }

    /// Everything refused so far, as one phrase, or `None` if nothing was.
    pub fn refusals(&self) -> Option<String> {
        let refused = self.lock();
        match refused.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            [first, rest @ ..] => Some(format!("{first} (and {} more)", rest.len())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses what the call returned if it carries the card: every string
    /// and byte list anywhere in `results`, and a `last-four` field that is
    /// not exactly the card's last four digits.
    pub fn check_results(&self, results: &[Val]) {
        for value in results {
            self.check_value(value, &|| "its result".to_string());
        }
    }

    /// `path` names where `value` is, built only for a refusal: this runs on
    /// every `tokenize` call and most never refuse anything.
    fn check_value(&self, value: &Val, path: &dyn Fn() -> String) {
        match value {
            Val::String(text) if self.carries(text.as_bytes()) => self.refuse(path()),
            Val::List(items) if items.iter().all(|v| matches!(v, Val::U8(_))) => {
                let bytes: Vec<u8> = items
                    .iter()
                    .map(|v| if let Val::U8(b) = v { *b } else { 0 })
                    .collect();
                if self.carries(&bytes) {
                    self.refuse(path());
                }
            }
            Val::List(items) | Val::Tuple(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.check_value(item, &|| format!("{}[{index}]", path()));
                }
            }
            Val::Record(fields) => {
                for (name, field) in fields {
                    let path = || format!("{}'s `{name}`", path());
                    match field {
                        Val::String(text) if name == "last-four" => {
                            if !self.is_last_four(text) {
                                let path = path();
                                tracing::warn!(
                                    target: crate::capabilities::log::TARGET,
                                    "refused {path}: it is not the card's last four digits"
                                );
                                self.lock().push(format!(
                                    "{path}, which is not the card's last four digits"
                                ));
                            }
                        }
                        other => self.check_value(other, &path),
                    }
                }
            }
            Val::Option(Some(inner)) | Val::Result(Ok(Some(inner))) => {
                self.check_value(inner, path)
            }
            Val::Result(Err(Some(inner))) => self.check_value(inner, &|| "its error".to_string()),
            Val::Variant(case, Some(inner)) => {
                self.check_value(inner, &|| format!("{} (`{case}`)", path()))
            }
            _ => {}
        }
    }

    /// Withholds the call's captured standard output and error if they carry
    /// the card.
    pub(crate) fn check_output(&self, output: &OutputCapture) {
        if output.withhold_if(|bytes| self.carries(bytes)) {
            self.refuse("its standard output or error");
        }
    }

    /// Makes the call's `log`, `kv` and `outbox` refuse this card.
    pub(crate) fn arm(self: &Arc<Self>, state: &mut CallState) {
        state.log.guard_card(self.clone());
        state.kv.guard_card(self.clone());
        state.outbox.guard_card(self.clone());
    }
}

/// The `pan` of a `tokenizer.tokenize` call's arguments, if `export` and
/// `function` name that function.
pub fn pan_argument<'a>(export: &str, function: &str, args: &'a [Val]) -> Option<&'a str> {
    let interface = export.split('@').next().unwrap_or(export);
    if interface != "outpost:plugins/tokenizer" || function != "tokenize" {
        return None;
    }
    let [Val::Record(fields)] = args else {
        return None;
    };
    fields.iter().find_map(|(name, value)| match value {
        Val::String(pan) if name == "pan" => Some(pan.as_str()),
        _ => None,
    })
}

/// The number a run of single digits spells.
fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |n, d| n * 10 + u32::from(*d))
}

/// Whether `digits` (0-9 each) pass the Luhn check.
fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(index, digit)| {
            let digit = u32::from(digit);
            if index % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The shortest and longest card numbers masked in log output.
const CARD_DIGITS: std::ops::RangeInclusive<usize> = 13..=19;

/// `text` with every card-like number masked: a run of 13 to 19 digits (a
/// single space or dash may separate groups, as cards are written) that
/// passes the Luhn check keeps its last four digits, and its other digits
/// become `*`. A run of digits longer than 19 with no separators is left
/// alone: it is not written like a card, and one in ten of its stretches
/// would pass the Luhn check.
pub fn mask_card_numbers(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    if bytes.iter().filter(|b| b.is_ascii_digit()).count() < *CARD_DIGITS.start() {
        return Cow::Borrowed(text);
    }
    // Groups of digits, as (start, end) byte offsets, and whether each is
    // joined to the one before by a single space or dash.
    let mut groups: Vec<(usize, usize, bool)> = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if !bytes[index].is_ascii_digit() {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
        let joined = groups
            .last()
            .is_some_and(|&(_, end, _)| start == end + 1 && matches!(bytes[end], b' ' | b'-'));
        groups.push((start, index, joined));
    }
    let mut masked: Option<Vec<u8>> = None;
    let mut first = 0;
    while first < groups.len() {
        let mut digits = 0;
        let mut found = None;
        for last in first..groups.len() {
            if last > first && !groups[last].2 {
                break;
            }
            digits += groups[last].1 - groups[last].0;
            if digits > *CARD_DIGITS.end() {
                break;
            }
            let run = || {
                groups[first..=last]
                    .iter()
                    .flat_map(|&(start, end, _)| bytes[start..end].iter().map(|b| b - b'0'))
            };
            if CARD_DIGITS.contains(&digits) && luhn(run().collect::<Vec<_>>().into_iter()) {
                found = Some(last);
            }
        }
        match found {
            Some(last) => {
                let out = masked.get_or_insert_with(|| bytes.to_vec());
                let mut keep = 4;
                for position in (groups[first].0..groups[last].1).rev() {
                    if out[position].is_ascii_digit() {
                        if keep > 0 {
                            keep -= 1;
                        } else {
                            out[position] = b'*';
                        }
                    }
                }
                first = last + 1;
            }
            None => first += 1,
        }
    }
    match masked {
        // Only ASCII digits were replaced, by an ASCII byte.
        Some(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Luhn-valid, with no long runs of one digit, so a match means the
    /// card and not a coincidence of repeated ones.
    const PAN: &str = "4539148803436467";

    fn guard() -> CardGuard {
        CardGuard::new(PAN).expect("a card")
    }

    #[test]
    fn the_card_is_found_however_it_is_spaced() {
        let guard = guard();
        for text in [
            PAN,
            "tok_4539148803436467",
            "card 4539 1488 0343 6467 declined",
            "4539-1488-0343-6467",
            "[4,5,3,9,1,4,8,8,0,3,4,3,6,4,6,7]",
            "[\"4\",\"5\",\"3\",\"9\",\"1\",\"4\",\"8\",\"8\"]",
            // The card with its last four masked, or any eight of its first
            // twelve digits.
            "453914880343****",
            "x 91488034 y",
        ] {
            assert!(guard.carries(text.as_bytes()), "{text}");
        }
        assert!(guard.carries(format!("{{\"pan\":\"{PAN}\"}}").as_bytes()));
    }

    #[test]
    fn what_a_display_may_show_and_unrelated_numbers_pass() {
        let guard = guard();
        for text in [
            // PCI DSS: first six and last four may be shown.
            "453914******6467",
            "4539146467",
            "ending 6467",
            // A reference-style token: other digits, the same last four.
            "0724115938216467",
            // Seven digits of the card are not enough.
            "4539148",
            // Letters break a run.
            "4539a1488b0343c6467",
            "order 2031-12 total 1250",
        ] {
            assert!(!guard.carries(text.as_bytes()), "{text}");
        }
        assert!(guard.is_last_four("6467"));
        assert!(!guard.is_last_four("646"));
        assert!(!guard.is_last_four(PAN));
    }

    #[test]
    fn short_numbers_are_not_guarded() {
        assert!(CardGuard::new("12345678901").is_none());
        assert!(CardGuard::new("").is_none());
        let spaced = CardGuard::new("4539 1488 0343 6467").expect("digits are read through");
        assert!(spaced.carries(PAN.as_bytes()));
    }

    #[test]
    fn results_are_checked_field_by_field() {
        let guard = guard();
        let token = |token: &str, last_four: &str| {
            Val::Result(Ok(Some(Box::new(Val::Record(vec![
                ("token".into(), Val::String(token.into())),
                ("brand".into(), Val::Enum("visa".into())),
                ("last-four".into(), Val::String(last_four.into())),
            ])))))
        };
        guard.check_results(&[token("0724115938216467", "6467")]);
        assert_eq!(guard.refusals(), None);

        guard.check_results(&[token(PAN, "6467")]);
        let refusals = guard.refusals().expect("refused");
        assert!(refusals.contains("`token`"), "{refusals}");
        assert!(!refusals.contains(PAN));

        let guard = self::guard();
        guard.check_results(&[token("0724115938216467", PAN)]);
        let refusals = guard.refusals().expect("refused");
        assert!(refusals.contains("`last-four`"), "{refusals}");

        let guard = self::guard();
        let error = Val::Result(Err(Some(Box::new(Val::Variant(
            "invalid-input".into(),
            Some(Box::new(Val::String(format!("card {PAN} refused")))),
        )))));
        guard.check_results(&[error]);
        assert!(guard.refusals().expect("refused").contains("its error"));
    }

    #[test]
    fn only_tokenize_has_a_card_argument() {
        let args = [Val::Record(vec![("pan".into(), Val::String(PAN.into()))])];
        assert_eq!(
            pan_argument("outpost:plugins/tokenizer@0.1.0", "tokenize", &args),
            Some(PAN)
        );
        assert_eq!(
            pan_argument(
                "outpost:plugins/tokenizer@0.1.0",
                "authorize-offline",
                &args
            ),
            None
        );
        assert_eq!(
            pan_argument("outpost:plugins/courier@0.1.0", "tokenize", &args),
            None
        );
    }

    #[test]
    fn card_like_numbers_are_masked_in_any_log_line() {
        assert_eq!(
            mask_card_numbers("paid with 4539148803436467."),
            "paid with ************6467."
        );
        assert_eq!(
            mask_card_numbers("4539 1488 0343 6467 exp 12/31"),
            "**** **** **** 6467 exp 12/31"
        );
        assert_eq!(
            mask_card_numbers("4539-1488-0343-6467 12"),
            "****-****-****-6467 12"
        );
        // Amex, 15 digits.
        assert_eq!(mask_card_numbers("378282246310005"), "***********0005");
        // Not Luhn-valid, too short, too long: left alone.
        for text in [
            "4539148803436468",
            "order 123456789012",
            "45391488034364671234567",
            "no digits at all",
        ] {
            assert_eq!(mask_card_numbers(text), text);
        }
        // A PAN inside a longer line of groups is still found.
        assert_eq!(
            mask_card_numbers("ref 12 4539148803436467"),
            "ref 12 ************6467"
        );
    }

    #[test]
    fn luhn_agrees_with_known_numbers() {
        let digits = |text: &str| text.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn(digits(PAN).into_iter()));
        assert!(luhn(digits("4111111111111111").into_iter()));
        assert!(!luhn(digits("4111111111111112").into_iter()));
    }
}
