//! The syslog header: just enough of RFC 5424 and RFC 3164 to find HOSTNAME, APP-NAME and where MSG starts.
//!
//! Written here rather than taken from `syslog_loose` (the maintained crate, checked with `cargo info`):
//! - it works on `&str`, so a message with bytes that are not UTF-8 would have to be converted lossily,
//!   which changes the record (and its content-hash event id); this parser works on bytes;
//! - it reads the first word after a RFC 3164 HOSTNAME as a TAG even without the `:` that ends a TAG, so a
//!   PAN-OS message (`<14>Nov 21 10:00:03 PA-3220 1,2026/11/21 10:00:03,0128…`, no TAG at all) comes out as
//!   app `1,2026/11/21` and message `10:00:03,0128…`: the CSV record is cut (checked against 0.23);
//! - Storyline reads the event time from the record itself, never from the syslog header, so timestamps
//!   need no parsing, only skipping.
//!
//! Never fails: a frame it cannot read as syslog is returned whole as the message ([`Kind::Unparsed`]),
//! for the record's parser to accept or dead-letter.

/// Which header was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rfc5424,
    Rfc3164,
    /// No `<PRI>` or no readable header: the whole frame is the message.
    Unparsed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub kind: Kind,
    pub pri: Option<u8>,
    pub hostname: Option<&'a [u8]>,
    pub app_name: Option<&'a [u8]>,
    /// The MSG part: for RFC 3164 the CONTENT after a TAG (`app[pid]: `) when there is one, else all that
    /// follows HOSTNAME. Trailing CR, LF and NUL, a UTF-8 BOM and leading spaces are removed.
    pub msg: &'a [u8],
}

impl Header<'_> {
    pub fn hostname_str(&self) -> Option<&str> {
        self.hostname.and_then(|h| std::str::from_utf8(h).ok())
    }

    pub fn app_name_str(&self) -> Option<&str> {
        self.app_name.and_then(|a| std::str::from_utf8(a).ok())
    }
}

const MONTHS: [&[u8]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Longest TAG name taken as an APP-NAME (RFC 5424 allows 48; RFC 3164 says 32, senders exceed it).
const MAX_TAG: usize = 48;

pub fn parse(frame: &[u8]) -> Header<'_> {
    let frame = trim_end(frame);
    let unparsed = Header {
        kind: Kind::Unparsed,
        pri: None,
        hostname: None,
        app_name: None,
        msg: clean_msg(frame),
    };
    let Some((pri, rest)) = parse_pri(frame) else {
        return unparsed;
    };
    if let Some(h) = parse_5424(pri, rest) {
        return h;
    }
    parse_3164(pri, rest)
}

fn trim_end(mut b: &[u8]) -> &[u8] {
    while let [head @ .., last] = b {
        if matches!(*last, b'\n' | b'\r' | b'\0') {
            b = head;
        } else {
            break;
        }
    }
    b
}

fn clean_msg(mut m: &[u8]) -> &[u8] {
    if let Some(rest) = m.strip_prefix(b"\xEF\xBB\xBF") {
        m = rest;
    }
    while let [b' ', rest @ ..] = m {
        m = rest;
    }
    m
}

/// `<PRI>` with 1 to 3 digits and a value of at most 191.
fn parse_pri(b: &[u8]) -> Option<(u8, &[u8])> {
    let rest = b.strip_prefix(b"<")?;
    let end = rest.iter().position(|c| *c == b'>')?;
    if end == 0 || end > 3 || !rest[..end].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: u16 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    (v <= 191).then_some((v as u8, &rest[end + 1..]))
}

/// Splits off one space-terminated token. `None` if there is no space after it.
fn token(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = b.iter().position(|c| *c == b' ')?;
    Some((&b[..sp], &b[sp + 1..]))
}

fn nil(t: &[u8]) -> Option<&[u8]> {
    (t != b"-" && !t.is_empty()).then_some(t)
}

/// `VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]`.
fn parse_5424(pri: u8, b: &[u8]) -> Option<Header<'_>> {
    let (version, rest) = token(b)?;
    if version.is_empty()
        || version.len() > 2
        || version[0] == b'0'
        || !version.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let (_timestamp, rest) = token(rest)?;
    let (hostname, rest) = token(rest)?;
    let (app_name, rest) = token(rest)?;
    let (_procid, rest) = token(rest)?;
    let (_msgid, rest) = token(rest)?;
    let after_sd = skip_structured_data(rest)?;
    let msg = match after_sd {
        [] => &[][..],
        [b' ', msg @ ..] => msg,
        _ => return None,
    };
    Some(Header {
        kind: Kind::Rfc5424,
        pri: Some(pri),
        hostname: nil(hostname),
        app_name: nil(app_name),
        msg: clean_msg(msg),
    })
}

/// `-` or one or more `[id param="value" ...]`, where a value may hold `\"`, `\]` and `\\`.
fn skip_structured_data(b: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = b.strip_prefix(b"-") {
        return Some(rest);
    }
    let mut i = 0;
    if b.first() != Some(&b'[') {
        return None;
    }
    while b.get(i) == Some(&b'[') {
        i += 1;
        let mut quoted = false;
        loop {
            match *b.get(i)? {
                b'\\' if quoted => i += 2,
                b'"' => {
                    quoted = !quoted;
                    i += 1;
                }
                b']' if !quoted => {
                    i += 1;
                    break;
                }
                _ => i += 1,
            }
        }
    }
    b.get(i..)
}

/// `TIMESTAMP SP HOSTNAME SP [TAG] MSG`, where the TAG is `name:` or `name[pid]:`.
fn parse_3164(pri: u8, b: &[u8]) -> Header<'_> {
    let (hostname, rest) = match skip_3164_timestamp(b) {
        Some(rest) => {
            // A word ending in ':' is a TAG: the sender left HOSTNAME out.
            match token(rest) {
                Some((word, after)) if !word.is_empty() && !word.ends_with(b":") => {
                    (Some(word), after)
                }
                _ => (None, rest),
            }
        }
        None => (None, b),
    };
    let (app_name, msg) = split_tag(rest);
    Header {
        kind: Kind::Rfc3164,
        pri: Some(pri),
        hostname,
        app_name,
        msg: clean_msg(msg),
    }
}

/// `Mmm dd hh:mm:ss` (day padded with a space or a zero), optionally with a year before or after the time
/// and fractional seconds; or one RFC 3339 word (`2026-11-21T10:00:00.1+00:00`, as rsyslog forwards).
/// Returns what follows the space after it.
fn skip_3164_timestamp(b: &[u8]) -> Option<&[u8]> {
    if b.len() >= 11 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' {
        return token(b).map(|(_, rest)| rest);
    }
    if b.len() < 4 || !MONTHS.contains(&&b[..3]) || b[3] != b' ' {
        return None;
    }
    let mut rest = &b[4..];
    if let [b' ', r @ ..] = rest {
        rest = r;
    }
    let (day, r) = token(rest)?;
    if day.is_empty() || day.len() > 2 || !day.iter().all(u8::is_ascii_digit) {
        return None;
    }
    rest = r;
    let is_year = |t: &[u8]| t.len() == 4 && t.iter().all(u8::is_ascii_digit);
    let (mut word, mut r) = token(rest)?;
    if is_year(word) {
        (word, r) = token(r)?;
    }
    if !is_time(word) {
        return None;
    }
    if let Some((year, r2)) = token(r) {
        if is_year(year) {
            r = r2;
        }
    }
    Some(r)
}

fn is_time(t: &[u8]) -> bool {
    let hms = t.split(|c| *c == b'.').next().unwrap_or_default();
    hms.len() == 8
        && hms[2] == b':'
        && hms[5] == b':'
        && hms
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
}

/// Splits `name[pid]: content` or `name: content` into the name and the content. Anything else (a first word
/// without the closing colon, like a PAN-OS CSV record) is all content.
fn split_tag(b: &[u8]) -> (Option<&[u8]>, &[u8]) {
    let end = b.iter().position(|c| *c == b' ').unwrap_or(b.len());
    let word = &b[..end];
    let Some(tag) = word.strip_suffix(b":") else {
        return (None, b);
    };
    let name = match tag.iter().position(|c| *c == b'[') {
        Some(open) => {
            let pid = &tag[open + 1..];
            if !pid.ends_with(b"]") || pid[..pid.len() - 1].contains(&b'[') {
                return (None, b);
            }
            &tag[..open]
        }
        None => tag,
    };
    let ok = !name.is_empty()
        && name.len() <= MAX_TAG
        && name
            .iter()
            .all(|c| c.is_ascii_graphic() && !matches!(c, b':' | b'[' | b']'));
    if !ok {
        return (None, b);
    }
    let content = b.get(end + 1..).unwrap_or_default();
    (Some(name), content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (Kind, Option<&str>, Option<&str>, &str) {
        let h = parse(s.as_bytes());
        (
            h.kind,
            h.hostname.map(|b| std::str::from_utf8(b).unwrap()),
            h.app_name.map(|b| std::str::from_utf8(b).unwrap()),
            std::str::from_utf8(h.msg).unwrap(),
        )
    }

    #[test]
    fn rfc5424_from_logger_with_structured_data() {
        let (k, host, app, msg) = p("<134>1 2026-11-21T23:44:10.995731+00:00 vm fw - - [timeQuality tzKnown=\"1\" isSynced=\"0\"] hello 1,2,3\n");
        assert_eq!(k, Kind::Rfc5424);
        assert_eq!((host, app, msg), (Some("vm"), Some("fw"), "hello 1,2,3"));
    }

    #[test]
    fn rfc5424_escapes_nil_fields_bom_and_empty_msg() {
        let (_, host, app, msg) =
            p("<13>1 - - - - - [a x=\"q\\\"]\\\\\"][b y=\"]\"] \u{feff}body [not sd]");
        assert_eq!((host, app, msg), (None, None, "body [not sd]"));
        let (k, host, _, msg) = p("<13>1 2026-11-21T10:00:00Z h a 1 ID -");
        assert_eq!((k, host, msg), (Kind::Rfc5424, Some("h"), ""));
        // rsyslog's RSYSLOG_SyslogProtocol23Format keeps the space that followed a 3164 TAG.
        let (_, _, app, msg) = p("<14>1 2026-11-21T10:00:00Z h panos - - -  1,2026/11/21\n");
        assert_eq!((app, msg), (Some("panos"), "1,2026/11/21"));
    }

    #[test]
    fn rfc5424_malformed_structured_data_is_read_as_3164_or_whole() {
        let h = parse(b"<13>1 2026-11-21T10:00:00Z h a 1 ID [unterminated x=\"y");
        assert_eq!(h.kind, Kind::Rfc3164);
        assert!(h.msg.ends_with(b"[unterminated x=\"y"));
    }

    #[test]
    fn rfc3164_with_tag_and_pid() {
        let (k, host, app, msg) = p("<134>Nov 21 23:44:10 vm fw: hello 1,2,3");
        assert_eq!(k, Kind::Rfc3164);
        assert_eq!((host, app, msg), (Some("vm"), Some("fw"), "hello 1,2,3"));
        let (_, host, app, msg) = p("<13>Nov  5 01:02:03 web-1 suricata[1234]: {\"a\":1}\r\n");
        assert_eq!(
            (host, app, msg),
            (Some("web-1"), Some("suricata"), "{\"a\":1}")
        );
    }

    #[test]
    fn rfc3164_panos_has_no_tag_and_keeps_the_whole_csv() {
        let line = "1,2026/11/21 10:00:03,012801012345,TRAFFIC,end,2561";
        let frame = format!("<14>Nov 21 10:00:03 PA-3220 {line}");
        let (_, host, app, msg) = p(&frame);
        assert_eq!((host, app, msg), (Some("PA-3220"), None, line));
    }

    #[test]
    fn rfc3164_variants_rfc3339_year_and_no_hostname() {
        let (_, host, app, msg) = p("<14>2026-11-21T10:00:03.123+00:00 fw1 app: m");
        assert_eq!((host, app, msg), (Some("fw1"), Some("app"), "m"));
        let (_, host, app, msg) = p("<14>Nov 21 2026 10:00:03 asa %ASA-6-302013: Built");
        assert_eq!(
            (host, app, msg),
            (Some("asa"), Some("%ASA-6-302013"), "Built")
        );
        let (_, host, app, msg) = p("<14>Nov 21 10:00:03 sshd[9]: Accepted");
        assert_eq!((host, app, msg), (None, Some("sshd"), "Accepted"));
        let (_, host, app, msg) = p("<14>no timestamp here");
        assert_eq!((host, app, msg), (None, None, "no timestamp here"));
        // CEF carries colons inside its first word: not a TAG.
        let (_, host, app, msg) = p("<14>Nov 21 10:00:03 h CEF:0|V|P|1|100|x|5|src=1.2.3.4");
        assert_eq!(
            (host, app, msg),
            (Some("h"), None, "CEF:0|V|P|1|100|x|5|src=1.2.3.4")
        );
    }

    #[test]
    fn no_pri_is_the_whole_frame() {
        for s in ["plain line", "<>x", "<999>x", "<1a>x", ""] {
            let (k, host, app, msg) = p(s);
            assert_eq!((k, host, app, msg), (Kind::Unparsed, None, None, s));
        }
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let samples = [
            "<134>1 2026-11-21T23:44:10Z vm fw - - [a b=\"c\\\"\"] msg",
            "<134>Nov 21 23:44:10 vm fw[1]: msg",
            "<14>Nov 21 2026 10:00:03 asa %ASA: x",
        ];
        for s in samples {
            for i in 0..=s.len() {
                let _ = parse(&s.as_bytes()[..i]);
            }
        }
        let _ = parse(&[0xff, b'<', b'1', b'>', 0xfe]);
    }
}
