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
    super::fast_or_dom(raw, ev, fast::parse, parse_dom)
}

/// The definition of the format, and the path that names the field of a rejected record.
pub(crate) fn parse_dom(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let o = json::parse_object(raw, "a Winlogbeat event")?;
    observer(ev, "host", "Microsoft", "Sysmon");

    match json::uint::<u64>(&o, "winlog.event_id", ID_EXPECTED)? {
        Some(3) => {}
        Some(other) => return Err(Rejection::bad_value("winlog.event_id", other, ID_EXPECTED)),
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
        set_image(ev, image);
    }
    ev.user.name = json::text(&o, &data("User"))?;

    let computer = json::text(&o, "winlog.computer_name")?;
    let record = json::uint::<u64>(&o, "winlog.record_id", "an event record number")?;
    Ok(host_and_id(ev, computer, record))
}

const ID_EXPECTED: &str = "3: only Sysmon network-connection events (event ID 3) are accepted; \
                           filter other event IDs out at the shipper";

fn set_image(ev: &mut Event, image: Str) {
    ev.process.name = Some(basename(&image))
        .filter(|n| !n.is_empty())
        .map(Str::from);
    ev.process.executable = Some(image);
}

/// Sets `host.name`; returns the own id `<computer_name>:<record_id>` when both are known.
fn host_and_id(ev: &mut Event, computer: Option<Str>, record: Option<u64>) -> Option<Str> {
    ev.host.name = computer.clone();
    match (computer, record) {
        (Some(c), Some(r)) => Some(format!("{c}:{r}").into()),
        _ => None,
    }
}

fn data(name: &str) -> String {
    format!("{DATA}{name}")
}

/// `Initiated` tells whether the logging host opened the connection.
fn direction(o: &Obj) -> Result<Option<Str>, Rejection> {
    let field = data("Initiated");
    Ok(match json::text(o, &field)?.as_deref() {
        None => None,
        Some(v) => match direction_of(v) {
            Some(d) => Some(d.into()),
            None => {
                return Err(Rejection::bad_value(
                    field,
                    format!("{v:?}"),
                    "\"true\" or \"false\"",
                ))
            }
        },
    })
}

fn direction_of(initiated: &str) -> Option<&'static str> {
    if initiated.eq_ignore_ascii_case("true") {
        Some("egress")
    } else if initiated.eq_ignore_ascii_case("false") {
        Some("ingress")
    } else {
        None
    }
}

/// Windows paths use backslashes, but Sysmon on Linux (and some forwarders) write slashes.
fn basename(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// The fast path (see [`crate::fast`]): the same mapping as [`parse_dom`], on borrowed fields.
pub(crate) mod fast {
    use super::*;
    use crate::fast::{self as f, pick_in, Bail, Fast, Field, Nested, Refuse};
    use serde::Deserialize;

    /// The keys [`parse_dom`] reads: nested as Winlogbeat 8 ships them, or flat as some pipelines
    /// rewrite them. The mixed spellings (`"winlog.event_data": {..}`, or `"event_data.X"` inside
    /// `winlog`) are left to the DOM path.
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Record<'a> {
        #[serde(borrow, rename = "@timestamp")]
        timestamp: Field<'a>,
        #[serde(borrow)]
        winlog: Nested<Winlog<'a>>,
        #[serde(borrow, rename = "winlog.event_id")]
        event_id: Field<'a>,
        #[serde(borrow, rename = "winlog.computer_name")]
        computer_name: Field<'a>,
        #[serde(borrow, rename = "winlog.record_id")]
        record_id: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.UtcTime")]
        utc_time: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.SourceIp")]
        source_ip: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.SourcePort")]
        source_port: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.DestinationIp")]
        destination_ip: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.DestinationPort")]
        destination_port: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.Protocol")]
        protocol: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.Initiated")]
        initiated: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.ProcessId")]
        process_id: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.Image")]
        image: Field<'a>,
        #[serde(borrow, rename = "winlog.event_data.User")]
        user: Field<'a>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Winlog<'a> {
        #[serde(borrow)]
        event_id: Field<'a>,
        #[serde(borrow)]
        computer_name: Field<'a>,
        #[serde(borrow)]
        record_id: Field<'a>,
        #[serde(borrow)]
        event_data: Nested<EventData<'a>>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "PascalCase")]
    struct EventData<'a> {
        #[serde(borrow)]
        utc_time: Field<'a>,
        #[serde(borrow)]
        source_ip: Field<'a>,
        #[serde(borrow)]
        source_port: Field<'a>,
        #[serde(borrow)]
        destination_ip: Field<'a>,
        #[serde(borrow)]
        destination_port: Field<'a>,
        #[serde(borrow)]
        protocol: Field<'a>,
        #[serde(borrow)]
        initiated: Field<'a>,
        #[serde(borrow)]
        process_id: Field<'a>,
        #[serde(borrow)]
        image: Field<'a>,
        #[serde(borrow)]
        user: Field<'a>,
    }

    impl Refuse for Record<'_> {
        const REFUSE: Option<fn(&str) -> bool> = Some(|key| key == "winlog.event_data");
    }
    impl Refuse for Winlog<'_> {
        const REFUSE: Option<fn(&str) -> bool> = Some(|key| key.starts_with("event_data."));
    }
    impl Refuse for EventData<'_> {}

    pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Fast<Option<Str>> {
        f::object_with(raw, |r: &Record| map(r, ev))
    }

    fn map(r: &Record, ev: &mut Event) -> Fast<Option<Str>> {
        let winlog = r.winlog.object();
        let data = winlog.and_then(|w| w.event_data.object());

        observer(ev, "host", "Microsoft", "Sysmon");
        if f::uint::<u64>(pick_in(&r.event_id, winlog, |w| &w.event_id))? != Some(3) {
            return Err(Bail);
        }
        ev.timestamp = match r.timestamp.get() {
            Some(t) => f::datetime(Some(t))?,
            None => match f::text(pick_in(&r.utc_time, data, |d| &d.utc_time))? {
                Some(t) => timefmt::parse_datetime(&t).ok_or(Bail)?,
                None => return Err(Bail),
            },
        };
        categorize(ev, "event", "connection", "windows.sysmon_operational");

        ev.source.ip = f::ip(pick_in(&r.source_ip, data, |d| &d.source_ip))?;
        ev.source.port = f::uint(pick_in(&r.source_port, data, |d| &d.source_port))?;
        ev.destination.ip = f::ip(pick_in(&r.destination_ip, data, |d| &d.destination_ip))?;
        ev.destination.port = f::uint(pick_in(&r.destination_port, data, |d| &d.destination_port))?;
        if let Some(p) = f::text(pick_in(&r.protocol, data, |d| &d.protocol))? {
            set_transport(ev, &p);
        }
        ev.network.direction = match f::text(pick_in(&r.initiated, data, |d| &d.initiated))? {
            None => None,
            Some(v) => Some(direction_of(&v).ok_or(Bail)?.into()),
        };

        ev.process.pid = f::uint(pick_in(&r.process_id, data, |d| &d.process_id))?;
        if let Some(image) = f::text(pick_in(&r.image, data, |d| &d.image))? {
            set_image(ev, image);
        }
        ev.user.name = f::text(pick_in(&r.user, data, |d| &d.user))?;

        let computer = f::text(pick_in(&r.computer_name, winlog, |w| &w.computer_name))?;
        let record = f::uint::<u64>(pick_in(&r.record_id, winlog, |w| &w.record_id))?;
        Ok(host_and_id(ev, computer, record))
    }
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
