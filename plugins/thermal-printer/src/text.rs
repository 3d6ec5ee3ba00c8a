//! Text layout shared by both languages: word wrapping and column alignment,
//! measured in characters.

/// Wraps `text` into lines of at most `width` characters, breaking at spaces
/// where it can and inside a word only when the word alone is too long.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        if line_len > 0 && line_len + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
            line_len = 0;
        }
        while word.len() > width {
            if line_len > 0 {
                lines.push(std::mem::take(&mut line));
                line_len = 0;
            }
            let rest = word.split_off(width);
            lines.push(word.into_iter().collect());
            word = rest;
        }
        if line_len > 0 {
            line.push(' ');
            line_len += 1;
        }
        line.extend(word.iter());
        line_len += word.len();
    }
    if line_len > 0 {
        lines.push(line);
    }
    lines
}

/// `left` and `right` on one line of `width` characters, `right` flush right.
/// When they do not fit together, `left` wraps and `right` ends its last line,
/// or goes on a line of its own when it would leave `left` too little room.
pub(crate) fn two_columns(left: &str, right: &str, width: usize) -> Vec<String> {
    let right_len = right.chars().count();
    let beside = width.saturating_sub(right_len + 1);
    let left_width = if beside >= width / 2 { beside } else { width };
    let mut lines = wrap(left, left_width);
    let last_len = lines.last().map(|line| line.chars().count());
    match last_len {
        Some(len) if len + 1 + right_len <= width => {
            let padding = width - len - right_len;
            if let Some(last) = lines.last_mut() {
                last.push_str(&" ".repeat(padding));
                last.push_str(right);
            }
        }
        _ => lines.push(format!("{right:>width$}")),
    }
    lines
}

/// Replaces characters a printer would treat as commands with spaces.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("the quick brown fox", 9), ["the quick", "brown fox"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("  spaced   out  ", 20), ["spaced out"]);
        assert!(wrap("", 10).is_empty());
    }

    #[test]
    fn two_columns_keep_the_amount_flush_right() {
        assert_eq!(two_columns("Bread", "3.50", 12), ["Bread   3.50"]);
        // The left column is 7 wide here, so the text wraps and the amount
        // ends the last line.
        assert_eq!(
            two_columns("Rye bread large", "3.50", 12),
            ["Rye", "bread", "large   3.50"]
        );
        // Too narrow for both: the amount takes a line of its own.
        assert_eq!(two_columns("Coffee", "1234.50", 8), ["Coffee", " 1234.50"]);
        assert_eq!(two_columns("", "9.99", 6), ["  9.99"]);
    }
}
