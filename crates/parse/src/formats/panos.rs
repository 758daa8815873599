//! Palo Alto Networks PAN-OS TRAFFIC (and the shared leading fields of THREAT) logs in syslog CSV form.
//!
//! Field order follows the PAN-OS 10.x/11.x administrator's guide, "Syslog Field Descriptions" →
//! "Traffic Log Fields" and "Threat Log Fields" (docs.paloaltonetworks.com). Times have no zone; the
//! firewall writes its configured local time, which deployments forwarding to a SIEM set to UTC, so
//! UTC is assumed. Own id: `<serial>:<sequence number>`; the sequence number is per firewall and
//! never reused, so the pair is unique.

use super::common::{categorize, observer, outcome_of_verdict, set_transport};
use crate::csv;
use crate::error::{excerpt, Rejection};
use crate::json::{parse_ip, COUNT_EXPECTED, IP_EXPECTED, PORT_EXPECTED};
use crate::timefmt;
use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;
use storyline_model::{Event, Str};

/// Field names in order, up to the sequence number (the last field this parser needs).
const TRAFFIC: [&str; 40] = [
    "FUTURE_USE",
    "Receive Time",
    "Serial Number",
    "Type",
    "Threat/Content Type",
    "FUTURE_USE",
    "Generated Time",
    "Source Address",
    "Destination Address",
    "NAT Source IP",
    "NAT Destination IP",
    "Rule Name",
    "Source User",
    "Destination User",
    "Application",
    "Virtual System",
    "Source Zone",
    "Destination Zone",
    "Inbound Interface",
    "Outbound Interface",
    "Log Action",
    "FUTURE_USE",
    "Session ID",
    "Repeat Count",
    "Source Port",
    "Destination Port",
    "NAT Source Port",
    "NAT Destination Port",
    "Flags",
    "Protocol",
    "Action",
    "Bytes",
    "Bytes Sent",
    "Bytes Received",
    "Packets",
    "Start Time",
    "Elapsed Time",
    "Category",
    "FUTURE_USE",
    "Sequence Number",
];

/// THREAT shares TRAFFIC's first 31 fields, then: URL/Filename, Threat ID, Category, Severity,
/// Direction, Sequence Number.
const THREAT_SEQUENCE: usize = 36;

// Indices of the fields used (see `TRAFFIC`).
const SERIAL: usize = 2;
const SUBTYPE: usize = 4;
const GENERATED: usize = 6;
const SRC: usize = 7;
const DST: usize = 8;
const NAT_SRC: usize = 9;
const NAT_DST: usize = 10;
const RULE: usize = 11;
const SRC_USER: usize = 12;
const APP: usize = 14;
const SESSION: usize = 22;
const SPORT: usize = 24;
const DPORT: usize = 25;
const NAT_SPORT: usize = 26;
const NAT_DPORT: usize = 27;
const PROTO: usize = 29;
const ACTION: usize = 30;
const BYTES: usize = 31;
const BYTES_SENT: usize = 32;
const BYTES_RECEIVED: usize = 33;
const PACKETS: usize = 34;
const ELAPSED: usize = 36;
const SEQUENCE: usize = 39;
const PACKETS_SENT: usize = 44;
const PACKETS_RECEIVED: usize = 45;
/// Fields up to the last one read.
const USED: usize = PACKETS_RECEIVED + 1;

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    observer(ev, "firewall", "Palo Alto Networks", "PAN-OS");
    // Lossy: a user or zone name in a legacy encoding should not cost the whole record. (Checked
    // first as plain UTF-8, which is quicker for the usual valid line and gives the same text.)
    let text = match crate::utf8(raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(raw),
    };
    let (csv_part, threat) = locate(&text)?;
    // `locate` starts at Receive Time: put back the FUTURE_USE field before it (a syslog header may
    // be glued to it) so indices match the documentation. Fields after the last one read are not
    // split off: no check below can tell (counts are only reported up to the sequence number).
    let mut fields = Vec::with_capacity(USED);
    fields.push(Cow::Borrowed(""));
    csv::split_into(&mut fields, csv_part, USED);
    let f = Fields(&fields);

    let sequence = if threat { THREAT_SEQUENCE } else { SEQUENCE };
    if fields.len() <= sequence {
        let missing = if threat && fields.len() > ACTION {
            "Sequence Number"
        } else {
            TRAFFIC
                .get(fields.len())
                .copied()
                .unwrap_or("Sequence Number")
        };
        return Err(Rejection::missing(
            missing,
            format!(
                "the record has {} CSV fields, a PAN-OS {} log has at least {}; was it truncated, or \
                 is the firewall using a custom log format?",
                fields.len(),
                if threat { "THREAT" } else { "TRAFFIC" },
                sequence + 1
            ),
        ));
    }

    let generated = f.get(GENERATED).ok_or_else(|| {
        Rejection::missing(
            "Generated Time",
            "PAN-OS logs always carry the Generated Time (7th field)",
        )
    })?;
    ev.timestamp = timefmt::parse_datetime(generated)
        .ok_or_else(|| Rejection::bad_timestamp("Generated Time", generated))?;

    let subtype = f.get(SUBTYPE).unwrap_or("");
    let (kind, dataset) = if threat {
        ("alert", "panos.threat")
    } else {
        ("event", "panos.traffic")
    };
    let kind_type = match subtype {
        "start" => "start",
        "end" => "end",
        "drop" | "deny" => "denied",
        _ => "connection",
    };
    categorize(ev, kind, kind_type, dataset);

    ev.source.ip = f.ip(SRC)?;
    ev.destination.ip = f.ip(DST)?;
    ev.source.port = f.num(SPORT, PORT_EXPECTED)?;
    ev.destination.port = f.num(DPORT, PORT_EXPECTED)?;
    // The firewall writes 0.0.0.0 and port 0 when no translation happened.
    ev.source.nat.ip = f.ip(NAT_SRC)?.filter(|ip| !ip.is_unspecified());
    if ev.source.nat.ip.is_some() {
        ev.source.nat.port = f.num(NAT_SPORT, PORT_EXPECTED)?;
    }
    ev.destination.nat.ip = f.ip(NAT_DST)?.filter(|ip| !ip.is_unspecified());
    if ev.destination.nat.ip.is_some() {
        ev.destination.nat.port = f.num(NAT_DPORT, PORT_EXPECTED)?;
    }
    if let Some(p) = f.get(PROTO) {
        set_transport(ev, p);
    }
    ev.network.protocol = f.get(APP).and_then(application);
    ev.rule.name = f.get(RULE).map(Str::from);
    ev.user.name = f.get(SRC_USER).map(Str::from);
    ev.session.id = f.get(SESSION).map(Str::from);
    if let Some(action) = f.get(ACTION) {
        ev.event.outcome = outcome_of_verdict(action);
        ev.event.action = Some(action.into());
    }

    if !threat {
        ev.network.bytes = f.num(BYTES, COUNT_EXPECTED)?;
        ev.source.bytes = f.num(BYTES_SENT, COUNT_EXPECTED)?;
        ev.destination.bytes = f.num(BYTES_RECEIVED, COUNT_EXPECTED)?;
        ev.network.packets = f.num(PACKETS, COUNT_EXPECTED)?;
        ev.source.packets = f.num(PACKETS_SENT, COUNT_EXPECTED)?;
        ev.destination.packets = f.num(PACKETS_RECEIVED, COUNT_EXPECTED)?;
        let elapsed: Option<u64> = f.num(ELAPSED, "elapsed seconds (an integer)")?;
        ev.event.duration = elapsed.map(|s| {
            i64::try_from(s)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000_000)
        });
    }

    Ok(match (f.get(SERIAL), f.get(sequence)) {
        (Some(serial), Some(seq)) => Some(format!("{serial}:{seq}").into()),
        _ => None,
    })
}

/// Finds the CSV record inside a syslog line: it starts two fields before the log type (Receive Time,
/// Serial Number, then `TRAFFIC` or `THREAT`). Returns the text from Receive Time on, and whether it
/// is a THREAT log.
fn locate(line: &str) -> Result<(&str, bool), Rejection> {
    let Some((type_comma, is_threat)) = find_type(line) else {
        return Err(Rejection::bad_value(
            "Type",
            format!("{:?}", excerpt(line)),
            "a PAN-OS TRAFFIC or THREAT log: CSV whose 4th field is TRAFFIC or THREAT",
        ));
    };
    let before = line.get(..type_comma).unwrap_or("");
    let serial_comma = before.rfind(',');
    let receive_comma = serial_comma
        .and_then(|c| before.get(..c))
        .and_then(|b| b.rfind(','));
    match receive_comma.and_then(|c| line.get(c + 1..)) {
        Some(rest) => Ok((rest, is_threat)),
        None => Err(Rejection::missing(
            if serial_comma.is_some() {
                "Receive Time"
            } else {
                "Serial Number"
            },
            "a PAN-OS log starts FUTURE_USE,Receive Time,Serial Number,Type,...",
        )),
    }
}

/// The first `,TRAFFIC,` or `,THREAT,`, whichever comes first: the comma's index and whether it is
/// THREAT. One pass over the commas.
fn find_type(line: &str) -> Option<(usize, bool)> {
    let b = line.as_bytes();
    let mut from = 0;
    while let Some(off) = b.get(from..)?.iter().position(|&c| c == b',') {
        let comma = from + off;
        let after = b.get(comma + 1..)?;
        if after.starts_with(b"TRAFFIC,") {
            return Some((comma, false));
        }
        if after.starts_with(b"THREAT,") {
            return Some((comma, true));
        }
        from = comma + 1;
    }
    None
}

/// PAN-OS App-IDs to the names other sensors use, so reports of one flow agree.
fn application(app: &str) -> Option<Str> {
    Some(match app {
        "incomplete" | "insufficient-data" | "not-applicable" => return None,
        "web-browsing" => "http".into(),
        "ssl" => "tls".into(),
        "dns-base" => "dns".into(),
        other => other.to_ascii_lowercase().into(),
    })
}

struct Fields<'a>(&'a [Cow<'a, str>]);

impl Fields<'_> {
    /// The field's text; empty means absent.
    fn get(&self, i: usize) -> Option<&str> {
        self.0
            .get(i)
            .map(|s| crate::trim(s))
            .filter(|s| !s.is_empty())
    }

    fn name(i: usize) -> &'static str {
        match i {
            PACKETS_SENT => "Packets Sent",
            PACKETS_RECEIVED => "Packets Received",
            _ => TRAFFIC.get(i).copied().unwrap_or("field"),
        }
    }

    fn ip(&self, i: usize) -> Result<Option<IpAddr>, Rejection> {
        match self.get(i) {
            None => Ok(None),
            Some(s) => parse_ip(s)
                .map(Some)
                .ok_or_else(|| Rejection::bad_value(Self::name(i), format!("{s:?}"), IP_EXPECTED)),
        }
    }

    fn num<T: FromStr>(&self, i: usize, expected: &str) -> Result<Option<T>, Rejection> {
        match self.get(i) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| Rejection::bad_value(Self::name(i), format!("{s:?}"), expected)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::find_type;

    /// The first of either marker, as `find` for each and taking the earlier one would give.
    #[test]
    fn type_marker() {
        for line in [
            "a,TRAFFIC,b",
            "a,THREAT,b,TRAFFIC,c",
            "a,TRAFFIC,b,THREAT,c",
            "x,TRAFFI,THREAT,",
            ",THREAT,",
            "TRAFFIC,THREAT",
            "a,,TRAFFIC",
            "",
            "é,TRAFFIC,",
        ] {
            let traffic = line.find(",TRAFFIC,");
            let threat = line.find(",THREAT,");
            let want = match (traffic, threat) {
                (Some(a), Some(b)) if b < a => Some((b, true)),
                (Some(a), _) => Some((a, false)),
                (None, Some(b)) => Some((b, true)),
                (None, None) => None,
            };
            assert_eq!(find_type(line), want, "{line}");
        }
    }
}
