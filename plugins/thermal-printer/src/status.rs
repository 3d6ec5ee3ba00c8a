//! Asking a printer how it is, and reading its answer.
//!
//! ZPL printers answer `~HS` with three framed strings of comma-separated
//! flags. ESC/POS printers answer each `DLE EOT n` with one status byte; the
//! probe asks for three (printer, offline cause, paper sensor).

use outpost_sdk::printer_driver::{PrinterCondition, PrinterStatus, StatusProbe};
use outpost_sdk::types::PluginError;

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const DLE: u8 = 0x10;
const EOT: u8 = 0x04;

pub(crate) fn zpl_probe() -> StatusProbe {
    // Three strings of about 30 characters, each framed and followed by CR LF.
    StatusProbe {
        request: b"~HS".to_vec(),
        reply_bytes: 128,
    }
}

pub(crate) fn escpos_probe() -> StatusProbe {
    StatusProbe {
        request: vec![DLE, EOT, 1, DLE, EOT, 2, DLE, EOT, 4],
        reply_bytes: 3,
    }
}

fn status(conditions: Vec<PrinterCondition>, ready: bool, details: Vec<&str>) -> PrinterStatus {
    let detail = if details.is_empty() {
        "ready".to_string()
    } else {
        details.join(", ")
    };
    PrinterStatus {
        ready,
        conditions,
        detail,
    }
}

/// Splits a `~HS` reply into its framed strings.
fn frames(reply: &[u8]) -> Vec<&[u8]> {
    let mut frames = Vec::new();
    let mut rest = reply;
    while let Some(start) = rest.iter().position(|&b| b == STX) {
        let after = &rest[start + 1..];
        match after.iter().position(|&b| b == ETX) {
            Some(end) => {
                frames.push(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    frames
}

fn flag(fields: &[&str], index: usize, string: usize) -> Result<bool, PluginError> {
    match fields.get(index).map(|f| f.trim()) {
        Some("0") => Ok(false),
        Some("1") => Ok(true),
        other => Err(PluginError::invalid_input(format!(
            "~HS string {string}, field {}: expected a 0/1 flag, got {other:?}",
            index + 1
        ))),
    }
}

pub(crate) fn parse_zpl(reply: &[u8]) -> Result<PrinterStatus, PluginError> {
    let frames = frames(reply);
    if frames.len() < 2 {
        return Err(PluginError::invalid_input(format!(
            "a ~HS reply has three STX..ETX strings; got {} in {} bytes",
            frames.len(),
            reply.len()
        )));
    }
    let first = String::from_utf8_lossy(frames[0]);
    let second = String::from_utf8_lossy(frames[1]);
    let first: Vec<&str> = first.split(',').collect();
    let second: Vec<&str> = second.split(',').collect();
    if first.len() < 12 || second.len() < 8 {
        return Err(PluginError::invalid_input(format!(
            "a ~HS reply has 12 and 11 fields in its first two strings; got {} and {}",
            first.len(),
            second.len()
        )));
    }
    let mut conditions = Vec::new();
    let mut details = Vec::new();
    let checks = [
        (flag(&first, 1, 1)?, PrinterCondition::PaperOut, "paper out"),
        (flag(&first, 2, 1)?, PrinterCondition::Paused, "paused"),
        (
            flag(&first, 5, 1)?,
            PrinterCondition::BufferFull,
            "receive buffer full",
        ),
        (
            flag(&first, 11, 1)?,
            PrinterCondition::HeadTooHot,
            "print head too hot",
        ),
        (
            flag(&second, 2, 2)?,
            PrinterCondition::CoverOpen,
            "head open",
        ),
        (
            flag(&second, 3, 2)?,
            PrinterCondition::RibbonOut,
            "ribbon out",
        ),
    ];
    for (set, condition, words) in checks {
        if set {
            conditions.push(condition);
            details.push(words);
        }
    }
    if flag(&first, 9, 1)? {
        conditions.push(PrinterCondition::OtherError);
        details.push("RAM corrupted");
    }
    let ready = conditions.is_empty();
    Ok(status(conditions, ready, details))
}

/// DLE EOT status bytes always have bits 1 and 4 set and bits 0 and 7 clear.
fn status_byte(reply: &[u8], index: usize, asked: u8) -> Result<u8, PluginError> {
    let byte = *reply.get(index).ok_or_else(|| {
        PluginError::invalid_input(format!(
            "the printer sent {} status bytes; DLE EOT {asked} needs byte {}",
            reply.len(),
            index + 1
        ))
    })?;
    if byte & 0b1001_0011 != 0b0001_0010 {
        return Err(PluginError::invalid_input(format!(
            "byte {} ({byte:#04x}) is not a DLE EOT {asked} status byte",
            index + 1
        )));
    }
    Ok(byte)
}

pub(crate) fn parse_escpos(reply: &[u8]) -> Result<PrinterStatus, PluginError> {
    let printer = status_byte(reply, 0, 1)?;
    let offline = status_byte(reply, 1, 2)?;
    let paper = status_byte(reply, 2, 4)?;
    let mut conditions = Vec::new();
    let mut details = Vec::new();
    if offline & 0b0000_0100 != 0 {
        conditions.push(PrinterCondition::CoverOpen);
        details.push("cover open");
    }
    if offline & 0b0010_0000 != 0 || paper & 0b0110_0000 != 0 {
        conditions.push(PrinterCondition::PaperOut);
        details.push("paper out");
    } else if paper & 0b0000_1100 != 0 {
        conditions.push(PrinterCondition::PaperLow);
        details.push("paper low");
    }
    if offline & 0b0100_0000 != 0 {
        conditions.push(PrinterCondition::OtherError);
        details.push("error");
    }
    let is_offline = printer & 0b0000_1000 != 0;
    if is_offline && details.is_empty() {
        details.push("offline");
    }
    // Paper running low still prints.
    let blocking = conditions
        .iter()
        .any(|c| !matches!(c, PrinterCondition::PaperLow));
    Ok(status(conditions, !is_offline && !blocking, details))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(first: &str, second: &str) -> Vec<u8> {
        let mut reply = Vec::new();
        for text in [first, second, "1234,0"] {
            reply.push(STX);
            reply.extend_from_slice(text.as_bytes());
            reply.extend_from_slice(&[ETX, b'\r', b'\n']);
        }
        reply
    }

    const IDLE_1: &str = "030,0,0,1245,000,0,0,0,000,0,0,0";
    const IDLE_2: &str = "001,0,0,0,1,2,6,0,00000000,1,000";

    #[test]
    fn zpl_idle_printer_is_ready() {
        let status = parse_zpl(&hs(IDLE_1, IDLE_2)).expect("valid reply");
        assert!(status.ready);
        assert!(status.conditions.is_empty());
    }

    #[test]
    fn zpl_flags_become_conditions() {
        let status = parse_zpl(&hs(
            "030,1,1,1245,000,0,0,0,000,0,0,1",
            "001,0,1,0,1,2,6,0,00000000,1,000",
        ))
        .expect("valid reply");
        assert!(!status.ready);
        assert_eq!(
            status.conditions,
            [
                PrinterCondition::PaperOut,
                PrinterCondition::Paused,
                PrinterCondition::HeadTooHot,
                PrinterCondition::CoverOpen
            ]
        );
        assert_eq!(
            status.detail,
            "paper out, paused, print head too hot, head open"
        );
    }

    #[test]
    fn zpl_garbage_is_refused_with_a_reason() {
        let error = parse_zpl(b"hello").err().map(|e| e.message().to_string());
        assert!(error.unwrap_or_default().contains("STX..ETX"));
        let error = parse_zpl(&hs("030,x", IDLE_2))
            .err()
            .map(|e| e.message().to_string());
        assert!(error.unwrap_or_default().contains("fields"));
    }

    #[test]
    fn escpos_status_bytes() {
        let ready = parse_escpos(&[0x12, 0x12, 0x12]).expect("valid");
        assert!(ready.ready && ready.conditions.is_empty());

        let low = parse_escpos(&[0x12, 0x12, 0x1e]).expect("valid");
        assert!(low.ready);
        assert_eq!(low.conditions, [PrinterCondition::PaperLow]);

        let open = parse_escpos(&[0x1a, 0x16, 0x72]).expect("valid");
        assert!(!open.ready);
        assert_eq!(
            open.conditions,
            [PrinterCondition::CoverOpen, PrinterCondition::PaperOut]
        );

        assert!(parse_escpos(&[0x12, 0x12]).is_err());
        assert!(parse_escpos(&[0xff, 0x12, 0x12]).is_err());
    }
}
