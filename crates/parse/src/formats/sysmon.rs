//! Windows Sysmon event ID 3 (NetworkConnect) as shipped by Winlogbeat.
//!
//! Event data names follow the Sysmon documentation (learn.microsoft.com, sysinternals/downloads/
//! sysmon, "Event ID 3: Network connection"); the envelope (`winlog.*`, `@timestamp`) follows the
//! Winlogbeat exported-fields reference (elastic.co, beats/winlogbeat/exported-fields-winlog). Winlogbeat
//! sends every event-data value as a string, and `event_id`/`record_id` as numbers (7.x) or strings
//! (8.x), so all are coerced. Own id: `<computer_name>:<record_id>`, unique per Windows event log.

use super::common::{categorize, observer, set_transport};
use crate::error::Rejection;
use crate::json::{self, Obj, PORT_EXPECTED};
use crate::timefmt;
use storyline_model::{Event, Str};

const DATA: &str = "winlog.event_data.";

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let o = json::parse_object(raw, "a Winlogbeat event")?;
    observer(ev, "host", "Microsoft", "Sysmon");

    let id_expected = "3: only Sysmon network-connection events (event ID 3) are accepted; \
                       filter other event IDs out at the shipper";
    match json::uint::<u64>(&o, "winlog.event_id", id_expected)? {
        Some(3) => {}
        Some(other) => return Err(Rejection::bad_value("winlog.event_id", other, id_expected)),
        None => {
            return Err(Rejection::missing(
                "winlog.event_id",
                "Winlogbeat events carry winlog.event_id; this format accepts Sysmon event ID 3",
            ))
        }
    }

    ev.timestamp = match json::get(&o, "@timestamp") {
        Some(_) => json::datetime(&o, "@timestamp", "")?,
        // Sysmon's own UTC time, for shippers that drop Winlogbeat's `@timestamp`.
        None => match json::text(&o, &data("UtcTime"))? {
            Some(t) => timefmt::parse_datetime(&t)
                .ok_or_else(|| Rejection::bad_timestamp(data("UtcTime"), &t))?,
            None => {
                return Err(Rejection::missing(
                    "@timestamp",
                    "Winlogbeat sets @timestamp on every event (winlog.event_data.UtcTime is \
                     accepted instead)",
                ))
            }
        },
    };
    categorize(ev, "event", "connection", "windows.sysmon_operational");

    ev.source.ip = json::ip(&o, &data("SourceIp"))?;
    ev.source.port = json::uint(&o, &data("SourcePort"), PORT_EXPECTED)?;
    ev.destination.ip = json::ip(&o, &data("DestinationIp"))?;
    ev.destination.port = json::uint(&o, &data("DestinationPort"), PORT_EXPECTED)?;
    if let Some(p) = json::text(&o, &data("Protocol"))? {
        set_transport(ev, &p);
    }
    ev.network.direction = direction(&o)?;

    ev.process.pid = json::uint(&o, &data("ProcessId"), "a process id (unsigned integer)")?;
    if let Some(image) = json::text(&o, &data("Image"))? {
        ev.process.name = Some(basename(&image))
            .filter(|n| !n.is_empty())
            .map(Str::from);
        ev.process.executable = Some(image);
    }
    ev.user.name = json::text(&o, &data("User"))?;

    let computer = json::text(&o, "winlog.computer_name")?;
    let record = json::uint::<u64>(&o, "winlog.record_id", "an event record number")?;
    ev.host.name = computer.clone();
    Ok(match (computer, record) {
        (Some(c), Some(r)) => Some(format!("{c}:{r}").into()),
        _ => None,
    })
}

fn data(name: &str) -> String {
    format!("{DATA}{name}")
}

/// `Initiated` tells whether the logging host opened the connection.
fn direction(o: &Obj) -> Result<Option<Str>, Rejection> {
    let field = data("Initiated");
    Ok(match json::text(o, &field)?.as_deref() {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some("egress".into()),
        Some(v) if v.eq_ignore_ascii_case("false") => Some("ingress".into()),
        Some(v) => {
            return Err(Rejection::bad_value(
                field,
                format!("{v:?}"),
                "\"true\" or \"false\"",
            ))
        }
    })
}

/// Windows paths use backslashes, but Sysmon on Linux (and some forwarders) write slashes.
fn basename(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn basename() {
        assert_eq!(
            super::basename(r"C:\Windows\System32\svchost.exe"),
            "svchost.exe"
        );
        assert_eq!(super::basename("/usr/bin/curl"), "curl");
        assert_eq!(super::basename("curl"), "curl");
        assert_eq!(super::basename(r"C:\dir\"), "");
    }
}
