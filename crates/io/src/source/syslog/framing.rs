//! Syslog over TCP, RFC 6587: octet counting (`LEN SP MSG`) and non-transparent framing (`MSG LF`).
//!
//! The decoder holds at most `cap` bytes of a frame, whatever the sender does: a longer frame is cut at
//! `cap` and handed on marked `truncated` (it is dead-lettered as oversized downstream); the rest of it
//! is read and thrown away. An octet count is never used to size a buffer.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpFraming {
    /// Per frame: a leading digit means octet counting, anything else a line ended by LF.
    #[default]
    Auto,
    /// RFC 6587 3.4.1: `MSG-LEN SP SYSLOG-MSG`.
    OctetCounting,
    /// RFC 6587 3.4.2: frames end with LF.
    NonTransparent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub data: Vec<u8>,
    /// The frame was longer than the cap and `data` holds only its first `cap` bytes.
    pub truncated: bool,
}

#[derive(Debug)]
enum State {
    /// Between frames.
    Start,
    /// Reading the digits of an octet count.
    Count { digits: Vec<u8> },
    /// Inside an octet-counted frame with this many bytes still to come.
    Counted { remaining: u64, truncated: bool },
    /// Inside a LF-terminated frame.
    Line { truncated: bool },
}

pub struct Decoder {
    mode: TcpFraming,
    cap: usize,
    state: State,
    buf: Vec<u8>,
}

/// An octet count longer than this is not a count (u64 would overflow at 20).
const MAX_COUNT_DIGITS: usize = 12;

impl Decoder {
    pub fn new(mode: TcpFraming, cap: usize) -> Self {
        Self {
            mode,
            cap: cap.max(1),
            state: State::Start,
            buf: Vec::new(),
        }
    }

    /// Bytes held for the frame in progress (never more than the cap plus a count's digits).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds bytes read from the connection; complete frames are pushed to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Frame>) {
        while !data.is_empty() {
            match &mut self.state {
                State::Start => {
                    let b = data[0];
                    let counted = match self.mode {
                        TcpFraming::OctetCounting => true,
                        TcpFraming::NonTransparent => false,
                        TcpFraming::Auto => b.is_ascii_digit(),
                    };
                    if counted {
                        // Stray LFs between counted frames (some senders add them) are skipped.
                        if matches!(b, b'\n' | b'\r' | b' ') {
                            data = &data[1..];
                            continue;
                        }
                        self.state = State::Count { digits: Vec::new() };
                    } else {
                        if b == b'\n' {
                            // An empty line is no frame.
                            data = &data[1..];
                            continue;
                        }
                        self.state = State::Line { truncated: false };
                    }
                }
                State::Count { digits } => {
                    let b = data[0];
                    if b.is_ascii_digit() && digits.len() < MAX_COUNT_DIGITS {
                        digits.push(b);
                        data = &data[1..];
                    } else if b == b' ' && !digits.is_empty() {
                        data = &data[1..];
                        let n: u64 = std::str::from_utf8(digits)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        self.buf.clear();
                        self.state = State::Counted {
                            remaining: n,
                            truncated: false,
                        };
                        if n == 0 {
                            self.state = State::Start;
                        }
                    } else {
                        // Not a count after all: what was read starts a LF-terminated frame.
                        let digits = std::mem::take(digits);
                        self.buf.clear();
                        self.buf
                            .extend_from_slice(&digits[..digits.len().min(self.cap)]);
                        self.state = State::Line {
                            truncated: digits.len() > self.cap,
                        };
                    }
                }
                State::Counted {
                    remaining,
                    truncated,
                } => {
                    let take = (*remaining).min(data.len() as u64) as usize;
                    let room = self.cap - self.buf.len();
                    let keep = take.min(room);
                    self.buf.extend_from_slice(&data[..keep]);
                    if keep < take {
                        *truncated = true;
                    }
                    *remaining -= take as u64;
                    data = &data[take..];
                    if *remaining == 0 {
                        let truncated = *truncated;
                        self.emit(truncated, out);
                    }
                }
                State::Line { truncated } => {
                    let nl = data.iter().position(|b| *b == b'\n');
                    let chunk = &data[..nl.unwrap_or(data.len())];
                    if !*truncated {
                        let room = self.cap - self.buf.len();
                        if chunk.len() > room {
                            // Over the cap: hand on what we have now, skip to the end of the line.
                            self.buf.extend_from_slice(&chunk[..room]);
                            let frame = std::mem::take(&mut self.buf);
                            out.push(Frame {
                                data: frame,
                                truncated: true,
                            });
                            *truncated = true;
                        } else {
                            self.buf.extend_from_slice(chunk);
                        }
                    }
                    match nl {
                        Some(i) => {
                            data = &data[i + 1..];
                            if *truncated {
                                self.buf.clear();
                                self.state = State::Start;
                            } else {
                                self.emit(false, out);
                            }
                        }
                        None => data = &[],
                    }
                }
            }
        }
    }

    /// The connection ended: a LF-terminated frame still open is complete (its sender closed after it);
    /// a counted frame cut short is handed on as it is.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        match std::mem::replace(&mut self.state, State::Start) {
            State::Line { truncated: false } | State::Counted { .. } if !self.buf.is_empty() => {
                out.push(Frame {
                    data: std::mem::take(&mut self.buf),
                    truncated: false,
                });
            }
            State::Count { digits } if !digits.is_empty() => out.push(Frame {
                data: digits,
                truncated: false,
            }),
            _ => {}
        }
        self.buf.clear();
    }

    fn emit(&mut self, truncated: bool, out: &mut Vec<Frame>) {
        let data = std::mem::take(&mut self.buf);
        self.state = State::Start;
        if !data.is_empty() || truncated {
            out.push(Frame { data, truncated });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(mode: TcpFraming, cap: usize, input: &[u8], piece: usize) -> Vec<Frame> {
        let mut d = Decoder::new(mode, cap);
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            d.feed(chunk, &mut out);
            assert!(d.buffered() <= cap + MAX_COUNT_DIGITS);
        }
        d.finish(&mut out);
        out
    }

    fn texts(frames: &[Frame]) -> Vec<(String, bool)> {
        frames
            .iter()
            .map(|f| (String::from_utf8_lossy(&f.data).into_owned(), f.truncated))
            .collect()
    }

    #[test]
    fn auto_reads_both_framings_mixed_in_any_piece_size() {
        // "11 " counts "<13>1 - a b"; the LF after it would start a LF-framed frame and is skipped as an
        // empty line; the last frame has no LF and ends with the connection.
        let input = b"11 <13>1 - a b\n<14>line two\n4 <1>x\n\n<15>last";
        for piece in [1, 2, 3, 7, 100] {
            let f = decode_in_pieces(TcpFraming::Auto, 1024, input, piece);
            let want: Vec<(String, bool)> = ["<13>1 - a b", "<14>line two", "<1>x", "<15>last"]
                .iter()
                .map(|s| (s.to_string(), false))
                .collect();
            assert_eq!(texts(&f), want, "piece {piece}");
        }
    }

    #[test]
    fn octet_counted_frames_may_hold_newlines() {
        let f = decode_in_pieces(TcpFraming::Auto, 64, b"8 <1>a\nb\nc7 <2>1234", 4);
        assert_eq!(
            texts(&f),
            vec![("<1>a\nb\nc".into(), false), ("<2>1234".into(), false)]
        );
    }

    #[test]
    fn an_oversized_line_is_cut_once_and_the_rest_skipped() {
        let mut input = b"<1>".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10_000));
        input.extend_from_slice(b"\n<2>ok\n");
        for piece in [1, 100, 20_000] {
            let f = decode_in_pieces(TcpFraming::Auto, 50, &input, piece);
            assert_eq!(f.len(), 2, "piece {piece}");
            assert!(f[0].truncated);
            assert_eq!(f[0].data.len(), 50);
            assert_eq!(texts(&f[1..]), vec![("<2>ok".into(), false)]);
        }
    }

    #[test]
    fn an_unterminated_line_never_grows_past_the_cap() {
        let mut d = Decoder::new(TcpFraming::NonTransparent, 100);
        let mut out = Vec::new();
        for _ in 0..10_000 {
            d.feed(&[b'y'; 1000], &mut out);
            assert!(d.buffered() <= 100);
        }
        assert_eq!(out.len(), 1);
        assert!(out[0].truncated);
    }

    #[test]
    fn a_huge_octet_count_allocates_nothing_and_is_cut() {
        let mut d = Decoder::new(TcpFraming::Auto, 10);
        let mut out = Vec::new();
        d.feed(b"999999999999 ", &mut out);
        for _ in 0..100 {
            d.feed(&[b'z'; 1000], &mut out);
            assert!(d.buffered() <= 10);
        }
        assert!(out.is_empty());
        let mut d = Decoder::new(TcpFraming::Auto, 10);
        d.feed(b"20 0123456789abcdefghij5 <1>ok", &mut out);
        assert_eq!(
            texts(&out),
            vec![("0123456789".into(), true), ("<1>ok".into(), false)]
        );
    }

    #[test]
    fn digits_without_a_space_are_a_line() {
        let f = decode_in_pieces(TcpFraming::Auto, 64, b"1,2026/11/21 x\n", 3);
        assert_eq!(texts(&f), vec![("1,2026/11/21 x".into(), false)]);
    }

    #[test]
    fn forced_modes() {
        let f = decode_in_pieces(TcpFraming::NonTransparent, 64, b"12 not a count\n", 5);
        assert_eq!(texts(&f), vec![("12 not a count".into(), false)]);
        let f = decode_in_pieces(TcpFraming::OctetCounting, 64, b"3 abc\n4 defg", 5);
        assert_eq!(
            texts(&f),
            vec![("abc".into(), false), ("defg".into(), false)]
        );
    }
}
