//! `Range` on blob downloads, as RFC 9110 §14 has it: one range, an open
//! end (`bytes=500-`), a suffix (`bytes=-500`: the last 500 bytes), or
//! several at once (answered as `multipart/byteranges`). A header that
//! does not parse is ignored, as the RFC says, and the whole blob is sent;
//! only a well-formed request none of whose ranges overlaps the blob is
//! refused (416).

/// What to send for a `Range` header on a `size`-byte blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// No usable header: the whole blob, 200.
    Whole,
    /// One inclusive byte range, 206.
    One(u64, u64),
    /// Several, sorted and with overlaps merged, 206 multipart.
    Many(Vec<(u64, u64)>),
    /// 416, with `Content-Range: bytes */<size>`.
    Unsatisfiable,
}

/// More ranges than this in one request are not worth a multipart answer:
/// the whole blob is sent instead (RFC 9110 lets a server ignore `Range`).
const MAX_RANGES: usize = 16;

pub fn parse(header: &str, size: u64) -> Ranges {
    let Some(set) = header.trim().strip_prefix("bytes=") else {
        return Ranges::Whole;
    };
    if size == 0 {
        // Nothing to take a range of: the whole, empty blob.
        return Ranges::Whole;
    }
    let mut wanted = Vec::new();
    let mut any = false;
    for spec in set.split(',') {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Whole;
        };
        let (first, last) = (first.trim(), last.trim());
        let number = |text: &str| -> Option<u64> {
            (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse().ok())
                .flatten()
        };
        any = true;
        if first.is_empty() {
            // A suffix: the last `n` bytes.
            let Some(n) = number(last) else {
                return Ranges::Whole;
            };
            if n > 0 {
                wanted.push((size.saturating_sub(n), size - 1));
            }
            continue;
        }
        let Some(start) = number(first) else {
            return Ranges::Whole;
        };
        let end = if last.is_empty() {
            None
        } else {
            match number(last) {
                Some(end) if end >= start => Some(end),
                _ => return Ranges::Whole,
            }
        };
        if start < size {
            wanted.push((start, end.unwrap_or(u64::MAX).min(size - 1)));
        }
    }
    if !any {
        return Ranges::Whole;
    }
    if wanted.is_empty() {
        return Ranges::Unsatisfiable;
    }
    if wanted.len() > MAX_RANGES {
        return Ranges::Whole;
    }
    // Overlapping or touching ranges are merged, which RFC 9110 allows in
    // any order; otherwise the parts keep the order they were asked in.
    let mut sorted = wanted.clone();
    sorted.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        match merged.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    if merged.len() == wanted.len() {
        merged = wanted;
    }
    match merged.as_slice() {
        [(start, end)] => Ranges::One(*start, *end),
        _ => Ranges::Many(merged),
    }
}

/// The boundary between parts of a multipart answer. Blob bytes could
/// hold any fixed string; the digest-derived one is as unlikely to occur
/// as any and keeps answers reproducible.
pub fn boundary(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("outpost-range-{}", &hex[..hex.len().min(32)])
}

/// One part's header in a `multipart/byteranges` body.
pub fn part_header(boundary: &str, start: u64, end: u64, size: u64) -> String {
    format!(
        "--{boundary}\r\ncontent-type: application/octet-stream\r\ncontent-range: bytes {start}-{end}/{size}\r\n\r\n"
    )
}

/// The closing delimiter of a `multipart/byteranges` body.
pub fn closing(boundary: &str) -> String {
    format!("\r\n--{boundary}--\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_open_and_suffix_ranges() {
        assert_eq!(parse("bytes=0-9", 100), Ranges::One(0, 9));
        assert_eq!(parse("bytes=90-", 100), Ranges::One(90, 99));
        assert_eq!(parse("bytes=90-500", 100), Ranges::One(90, 99));
        assert_eq!(parse("bytes=-10", 100), Ranges::One(90, 99));
        assert_eq!(parse("bytes=-500", 100), Ranges::One(0, 99));
    }

    #[test]
    fn several_ranges_are_sorted_and_merged() {
        assert_eq!(
            parse("bytes=50-59, 0-9", 100),
            Ranges::Many(vec![(50, 59), (0, 9)])
        );
        assert_eq!(
            parse("bytes=50-59,0-9,55-70", 100),
            Ranges::Many(vec![(0, 9), (50, 70)])
        );
        assert_eq!(parse("bytes=0-9,5-20,21-30", 100), Ranges::One(0, 30));
        assert_eq!(
            parse("bytes=0-0,-1", 100),
            Ranges::Many(vec![(0, 0), (99, 99)])
        );
        // Numbers at the edge of u64 neither overflow nor panic.
        assert_eq!(
            parse(&format!("bytes=0-{}", u64::MAX), 100),
            Ranges::One(0, 99)
        );
        assert_eq!(
            parse(&format!("bytes=-{}", u64::MAX), 100),
            Ranges::One(0, 99)
        );
        assert_eq!(
            parse(&format!("bytes={}-", u64::MAX), 100),
            Ranges::Unsatisfiable
        );
        assert_eq!(parse("bytes=99999999999999999999999-", 100), Ranges::Whole);
        // Unsatisfiable ones among satisfiable ones are dropped.
        assert_eq!(parse("bytes=0-9,200-300", 100), Ranges::One(0, 9));
    }

    #[test]
    fn unsatisfiable_only_when_well_formed_and_outside() {
        assert_eq!(parse("bytes=100-", 100), Ranges::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Ranges::Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Ranges::Whole);
        assert_eq!(parse("bytes=-5", 0), Ranges::Whole);
        // Malformed headers are ignored, not refused.
        assert_eq!(parse("bytes=5-2", 100), Ranges::Whole);
        assert_eq!(parse("items=0-1", 100), Ranges::Whole);
        assert_eq!(parse("bytes=x-1", 100), Ranges::Whole);
        assert_eq!(parse("bytes=", 100), Ranges::Whole);
        let many = (0..20)
            .map(|i| format!("{}-{}", i * 3, i * 3))
            .collect::<Vec<_>>();
        assert_eq!(
            parse(&format!("bytes={}", many.join(",")), 100),
            Ranges::Whole
        );
    }
}
