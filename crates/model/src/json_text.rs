//! Scanning JSON string content, shared by the envelope parser and story output.

/// Index of the first `"`, `\` or control character in `b` (or `b.len()`), eight bytes at a time.
pub fn special(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let v = u64::from_le_bytes(bytes);
        // Bytes below 0x20, equal to '"' or equal to '\\' (high-bit bytes never match).
        let found = (v.wrapping_sub(ONES * 0x20) & !v & HIGHS)
            | has_zero(v ^ (ONES * u64::from(b'"')))
            | has_zero(v ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::special;

    #[test]
    fn special_bytes() {
        assert_eq!(special(b""), 0);
        assert_eq!(special(b"abc"), 3);
        assert_eq!(special(b"abcdefghijklmnop\"q"), 16);
        assert_eq!(special(b"abcdefgh\\ijklmnop"), 8);
        assert_eq!(special(b"abcdefghijk\tlmnop"), 11);
        assert_eq!(special("é€😀 plain text, long enough".as_bytes()), 33);
        for n in 0..40 {
            let mut s = vec![b'x'; n];
            s.push(b'"');
            s.extend_from_slice(b"yyyyyyyyyy");
            assert_eq!(special(&s), n);
            s[n] = 0x1f;
            assert_eq!(special(&s), n);
            s[n] = 0x7f;
            assert_eq!(special(&s), s.len());
        }
    }
}
