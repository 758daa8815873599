//! CSV: one record per story version, fixed columns ([`COLUMNS`]), RFC 4180 (fields that hold a comma, a
//! double quote, CR or LF are quoted, quotes doubled; records end in CRLF). Lists are joined with `;`;
//! times are RFC 3339; an absent value is an empty field.

use storyline_model::{Story, Str};

/// The columns, in order. Changing them is a breaking change for readers: add at the end.
pub const COLUMNS: &[&str] = &[
    "story_id",
    "version",
    "tenant",
    "first_seen",
    "last_seen",
    "event_count",
    "sensors",
    "source_ip",
    "source_port",
    "source_bytes",
    "source_packets",
    "source_nat_ip",
    "source_nat_port",
    "destination_ip",
    "destination_port",
    "destination_bytes",
    "destination_packets",
    "network_transport",
    "network_protocol",
    "community_id",
    "network_bytes",
    "network_packets",
    "dns_names",
    "url_domains",
    "tls_server_names",
    "user_names",
    "host_names",
    "process_names",
    "rule_names",
    "actions",
    "categories",
    "merged_into",
    "event_ids",
];

/// The header record.
pub fn header(buf: &mut Vec<u8>) {
    write_record(buf, COLUMNS.iter().map(|c| c.to_string()));
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn list(v: &[Str]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(";")
}

/// The fields of one story, in [`COLUMNS`] order.
pub fn fields(s: &Story) -> Vec<String> {
    let f = &s.fused;
    vec![
        s.story_id.to_string(),
        s.version.to_string(),
        s.tenant.to_string(),
        s.first_seen.to_rfc3339(),
        s.last_seen.to_rfc3339(),
        s.event_count.to_string(),
        list(&s.sensors),
        opt(f.source.ip),
        opt(f.source.port),
        opt(f.source.bytes),
        opt(f.source.packets),
        opt(f.source.nat.ip),
        opt(f.source.nat.port),
        opt(f.destination.ip),
        opt(f.destination.port),
        opt(f.destination.bytes),
        opt(f.destination.packets),
        opt(f.network.transport.as_deref()),
        opt(f.network.protocol.as_deref()),
        opt(f.network.community_id.as_deref()),
        opt(f.network.bytes),
        opt(f.network.packets),
        list(&f.dns.question.names),
        list(&f.url.domains),
        list(&f.tls.server_names),
        list(&f.user.names),
        list(&f.host.names),
        list(&f.process.names),
        list(&f.rule.names),
        list(&f.event.actions),
        list(&f.event.categories),
        opt(s.merged_into),
        list(&s.event_ids),
    ]
}

/// One record (with its CRLF).
pub fn record(s: &Story, buf: &mut Vec<u8>) {
    write_record(buf, fields(s).into_iter());
}

fn write_record(buf: &mut Vec<u8>, fields: impl Iterator<Item = String>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            buf.push(b'"');
            buf.extend_from_slice(field.replace('"', "\"\"").as_bytes());
            buf.push(b'"');
        } else {
            buf.extend_from_slice(field.as_bytes());
        }
    }
    buf.extend_from_slice(b"\r\n");
}

/// Splits RFC 4180 text into records of fields (for tests and for readers of our own files).
pub fn parse(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' => return Err(format!("a quote inside an unquoted field: {field:?}")),
            ',' => {
                record.push(std::mem::take(&mut field));
                at_start = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                at_start = true;
            }
            c => {
                field.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("an unterminated quoted field".into());
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn fixed_columns_quoting_and_round_trip() {
        let mut s = tls_story();
        s.fused.user.names = vec!["CORP\\alice".into(), "bob, \"the admin\"".into()].into();
        s.fused.process.names = vec!["line\nbreak".into()].into();
        let mut buf = Vec::new();
        header(&mut buf);
        record(&s, &mut buf);
        record(&dns_story(), &mut buf);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("story_id,version,tenant,first_seen,"));
        assert!(
            text.contains("\"CORP\\alice;bob, \"\"the admin\"\"\""),
            "{text}"
        );
        assert!(text.ends_with("\r\n"));
        let rows = parse(&text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>()
        );
        for r in &rows {
            assert_eq!(r.len(), COLUMNS.len());
        }
        let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(rows[1][col("story_id")], "00000000000000000000000000005d0c");
        assert_eq!(rows[1][col("version")], "3");
        assert_eq!(rows[1][col("first_seen")], "2026-11-21T10:00:01.2Z");
        assert_eq!(rows[1][col("source_nat_ip")], "198.51.100.7");
        assert_eq!(rows[1][col("destination_port")], "443");
        assert_eq!(rows[1][col("user_names")], "CORP\\alice;bob, \"the admin\"");
        assert_eq!(rows[1][col("process_names")], "line\nbreak");
        assert_eq!(rows[1][col("sensors")], "edr-agent;fw-edge-1;zeek-core");
        assert_eq!(rows[1][col("merged_into")], "");
        assert_eq!(rows[2][col("dns_names")], "www.example.com");
        assert_eq!(rows[2][col("network_transport")], "udp");
    }
}
