//! Printer bytes turned back into something a person can read.
//!
//! Not a renderer: a view for operators and the demo of what a printer was
//! sent. ZPL becomes its text fields in reading order (barcodes and the
//! reversed service bar marked), ESC/POS becomes its text with commands shown
//! as short markers such as `[cut]`.

/// Code page 858, bytes 0x80 to 0xFF, for decoding ESC/POS text.
const CP858_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜø£Ø×ƒáíóúñÑªº¿®¬½¼¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ðÐÊËÈ€ÍÎÏ┘┌█▄¦Ì▀ÓßÔÒõÕµþÞÚÛÙýÝ¯´\u{00ad}±‗¾¶§÷¸°¨·¹³²■\u{00a0}";

fn cp858(byte: u8) -> char {
    if byte < 0x80 {
        char::from(byte)
    } else {
        CP858_HIGH
            .chars()
            .nth(usize::from(byte - 0x80))
            .unwrap_or('?')
    }
}

/// Undoes `^FH_` hex escapes (`_5E` is `^`).
fn unescape_field(data: &str) -> String {
    let mut out = Vec::with_capacity(data.len());
    let bytes = data.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'_'
            && index + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&data[index + 1..index + 3], 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The text of a ZPL label, top to bottom.
pub fn zpl(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut fields: Vec<(u32, u32, String)> = Vec::new();
    let (mut x, mut y) = (0u32, 0u32);
    let mut reverse = false;
    let mut symbol: Option<&str> = None;
    for command in text.split(['^', '~']) {
        let command = command.trim_end_matches(['\r', '\n']);
        let (code, args) = command.split_at(command.len().min(2));
        match code {
            "FO" => {
                let mut parts = args
                    .split(',')
                    .map(|p| p.trim().parse::<u32>().unwrap_or(0));
                x = parts.next().unwrap_or(0);
                y = parts.next().unwrap_or(0);
                reverse = false;
                symbol = None;
            }
            "FR" => reverse = true,
            "BC" => symbol = Some("barcode"),
            "BQ" => symbol = Some("QR"),
            "GB" => {
                let mut parts = args
                    .split(',')
                    .map(|p| p.trim().parse::<u32>().unwrap_or(0));
                let (_, height) = (parts.next(), parts.next().unwrap_or(0));
                if height <= 10 {
                    fields.push((y, x, "─".repeat(40)));
                }
            }
            "FD" => {
                let mut data = unescape_field(args);
                if symbol == Some("QR") {
                    data = data
                        .split_once(',')
                        .map(|(_, d)| d.to_string())
                        .unwrap_or(data);
                }
                let shown = match (symbol, reverse) {
                    (Some(kind), _) => format!("[{kind}: {data}]"),
                    (None, true) => format!("█ {data} █"),
                    (None, false) => data,
                };
                fields.push((y, x, shown));
            }
            _ => {}
        }
    }
    fields.sort_by_key(|(y, x, _)| (*y, *x));
    let mut out = String::new();
    for (_, _, text) in fields {
        out.push_str(&text);
        out.push('\n');
    }
    out
}

/// The text of an ESC/POS receipt, `columns` wide.
pub fn escpos(bytes: &[u8], columns: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    let mut align = 0u8;
    let flush = |line: &mut String, out: &mut String, align: u8| {
        let width = line.chars().count();
        let pad = columns.saturating_sub(width);
        let left = match align {
            1 => pad / 2,
            2 => pad,
            _ => 0,
        };
        out.push_str(&" ".repeat(left));
        out.push_str(line.trim_end());
        out.push('\n');
        line.clear();
    };
    let at = |index: usize| bytes.get(index).copied().unwrap_or(0);
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        match (byte, at(index + 1)) {
            (0x1b, b'@') => index += 2,
            (0x1b, b't' | b'a' | b'E' | b'd' | b'!' | b'-' | b'M') => {
                match at(index + 1) {
                    b'a' => align = at(index + 2),
                    b'd' => {
                        for _ in 0..at(index + 2) {
                            flush(&mut line, &mut out, align);
                        }
                    }
                    _ => {}
                }
                index += 3;
            }
            (0x1b, b'p') => {
                line.push_str("[open drawer]");
                index += 5;
            }
            (0x1d, b'!' | b'h' | b'w' | b'H' | b'f') => index += 3,
            (0x1d, b'V') => {
                if !line.is_empty() {
                    flush(&mut line, &mut out, align);
                }
                out.push_str("✂ ---- cut ----\n");
                index += if matches!(at(index + 2), 65 | 66) {
                    4
                } else {
                    3
                };
            }
            (0x1d, b'v') => {
                let width = usize::from(at(index + 4)) | usize::from(at(index + 5)) << 8;
                let height = usize::from(at(index + 6)) | usize::from(at(index + 7)) << 8;
                line.push_str(&format!("[logo {}x{} dots]", width * 8, height));
                index += 8 + width * height;
            }
            (0x1d, b'k') => {
                let length = usize::from(at(index + 3));
                let data: String = bytes
                    .get(index + 4..index + 4 + length)
                    .unwrap_or_default()
                    .iter()
                    .map(|&b| cp858(b))
                    .collect();
                line.push_str(&format!("[barcode: {}]", data.trim_start_matches("{B")));
                index += 4 + length;
            }
            (0x1d, b'(') => {
                let length = usize::from(at(index + 3)) | usize::from(at(index + 4)) << 8;
                if at(index + 6) == 80 {
                    let data = bytes.get(index + 8..index + 5 + length).unwrap_or_default();
                    line.push_str(&format!("[QR: {}]", String::from_utf8_lossy(data)));
                }
                index += 5 + length;
            }
            (b'\n', _) => {
                flush(&mut line, &mut out, align);
                index += 1;
            }
            (b, _) if b < 0x20 => index += 1,
            (b, _) => {
                line.push(cp858(b));
                index += 1;
            }
        }
    }
    if !line.is_empty() {
        flush(&mut line, &mut out, align);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zpl_fields_come_out_in_reading_order() {
        let label = b"^XA\n^FO10,200^A0N,28,28^FH_^FDsecond_5Eline^FS\n\
                      ^FO10,100^A0N,28,28^FH_^FDfirst^FS\n\
                      ^FO10,300^FR^A0N,56,56^FH_^FDNEXT DAY^FS\n\
                      ^FO10,400^BY2^BCN,120,Y,N,N^FH_^FDAB123^FS\n^XZ\n";
        assert_eq!(
            zpl(label),
            "first\nsecond^line\n█ NEXT DAY █\n[barcode: AB123]\n"
        );
    }

    #[test]
    fn escpos_text_alignment_and_commands() {
        let mut receipt = vec![0x1b, b'@', 0x1b, b'a', 1];
        receipt.extend_from_slice(b"Shop\n");
        receipt.extend_from_slice(&[0x1b, b'a', 0]);
        receipt.extend_from_slice(b"Tea 2.50 \xd5\n");
        receipt.extend_from_slice(&[0x1d, b'V', 66, 3, 0x1b, b'p', 0, 25, 250]);
        assert_eq!(
            escpos(&receipt, 10),
            "   Shop\nTea 2.50 €\n✂ ---- cut ----\n[open drawer]\n"
        );
    }
}
