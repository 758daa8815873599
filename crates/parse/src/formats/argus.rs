//! Argus flow records as printed by `ra` in CSV form, e.g.
//! `ra -n -u -c , -s stime ltime saddr sport daddr dport proto pkts bytes -r argus.out`.
//!
//! `ra` prints a header line of column labels (`StartTime,LastTime,SrcAddr,Sport,...`); with it seen
//! first (see [`crate::HeaderTracker`]) the columns are found by label (or by their `-s` field
//! names), in any order. A bare line is read in the order of the example above. Labels follow the
//! ra(1) and argus(8) man pages (`-s` field names and their printed labels).
//!
//! Required columns: `StartTime` (`stime`), `SrcAddr` (`saddr`), `DstAddr` (`daddr`) and `Proto`
//! (`proto`). Read when present: `LastTime`, `Dur`, `Sport`, `Dport`, `SrcPkts`, `DstPkts`,
//! `SrcBytes`, `DstBytes` (per direction), `TotPkts`, `TotBytes` (used when the per-direction counts
//! are absent). Times must carry a date: `-u` (epoch seconds) or
//! `RA_TIME_FORMAT="%Y/%m/%d %T.%f"`; ra's default time-of-day-only format cannot be placed in time.
//! Ports must be numeric (`-n`); ICMP type/code in hex (`0x0008`) are accepted. UTC is assumed for
//! times without a zone. No own id: the content hash.

use super::columns::{utf8, Col, Columns, Row};
use super::common::{categorize, observer, set_transport};
use crate::error::Rejection;
use crate::timefmt;
use std::sync::OnceLock;
use storyline_model::{Event, Str, Timestamp};

/// The column order of a bare line.
const DEFAULT: &[&str] = &[
    "StartTime",
    "LastTime",
    "SrcAddr",
    "Sport",
    "DstAddr",
    "Dport",
    "Proto",
    "TotPkts",
    "TotBytes",
];

const TIME_HINT: &str = "argus records need StartTime with a date: run ra with -u (epoch seconds) \
                         or RA_TIME_FORMAT=\"%Y/%m/%d %T.%f\"";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    stime: Col,
    ltime: Col,
    dur: Col,
    saddr: Col,
    sport: Col,
    daddr: Col,
    dport: Col,
    proto: Col,
    pkts: Col,
    bytes: Col,
    spkts: Col,
    dpkts: Col,
    sbytes: Col,
    dbytes: Col,
}

impl Layout {
    pub(crate) fn new(cols: &Columns) -> Self {
        let c = |a: &[&'static str]| Col::find(cols, a);
        Layout {
            stime: c(&["StartTime", "stime"]),
            ltime: c(&["LastTime", "ltime"]),
            dur: c(&["Dur", "dur"]),
            saddr: c(&["SrcAddr", "saddr"]),
            sport: c(&["Sport", "sport"]),
            daddr: c(&["DstAddr", "daddr"]),
            dport: c(&["Dport", "dport"]),
            proto: c(&["Proto", "proto"]),
            pkts: c(&["TotPkts", "pkts"]),
            bytes: c(&["TotBytes", "bytes"]),
            spkts: c(&["SrcPkts", "spkts"]),
            dpkts: c(&["DstPkts", "dpkts"]),
            sbytes: c(&["SrcBytes", "sbytes"]),
            dbytes: c(&["DstBytes", "dbytes"]),
        }
    }
}

fn default_layout() -> &'static Layout {
    static CELL: OnceLock<Layout> = OnceLock::new();
    CELL.get_or_init(|| Layout::new(&Columns::from_names(DEFAULT)))
}

/// A header line names the source address column; no record has that text there.
pub(crate) fn header(line: &str) -> Option<Layout> {
    // Checked without allocating: every record line of a stream passes here.
    line.split(',')
        .any(|c| c.trim().eq_ignore_ascii_case("SrcAddr"))
        .then(|| Layout::new(&Columns::from_line(line)))
}

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let line = utf8(raw.trim_ascii())?;
    if header(line).is_some() {
        return Err(Rejection::bad_value(
            "SrcAddr",
            "\"SrcAddr\"",
            "a flow line; this is ra's header line, skip it",
        ));
    }
    parse_line(default_layout(), line, ev)
}

pub(crate) fn parse_line(l: &Layout, line: &str, ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let row = Row::split(line.trim(), "");
    observer(ev, "sensor", "QoSient", "Argus");
    categorize(ev, "event", "connection", "argus.flow");

    let start = row.require(l.stime, TIME_HINT)?;
    ev.timestamp = time(start, l.stime.name)?;
    ev.event.duration = match row.secs(l.dur)? {
        Some(d) => Some(d),
        None => match row.get(l.ltime) {
            Some(lt) => Some(time(lt, l.ltime.name)?.nanos_since(ev.timestamp).max(0)),
            None => None,
        },
    };

    ev.source.ip = Some(row.ip(l.saddr)?.ok_or_else(|| {
        Rejection::missing(l.saddr.name, "the flow's source address (ra -s saddr)")
    })?);
    ev.destination.ip = Some(row.ip(l.daddr)?.ok_or_else(|| {
        Rejection::missing(l.daddr.name, "the flow's destination address (ra -s daddr)")
    })?);
    ev.source.port = row.port(l.sport)?;
    ev.destination.port = row.port(l.dport)?;
    let proto = row.require(l.proto, "the flow's protocol, like tcp (ra -s proto)")?;
    if !proto
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(Rejection::bad_value(
            l.proto.name,
            format!("{proto:?}"),
            "a protocol name like tcp or a number",
        ));
    }
    set_transport(ev, proto);

    ev.source.packets = row.count(l.spkts)?;
    ev.destination.packets = row.count(l.dpkts)?;
    ev.source.bytes = row.count(l.sbytes)?;
    ev.destination.bytes = row.count(l.dbytes)?;
    // Totals only stand in when the export has no per-direction counts.
    ev.network.packets = row.count(l.pkts)?;
    ev.network.bytes = row.count(l.bytes)?;
    if ev.source.packets.is_some() || ev.destination.packets.is_some() {
        ev.network.packets = None;
    }
    if ev.source.bytes.is_some() || ev.destination.bytes.is_some() {
        ev.network.bytes = None;
    }
    Ok(None)
}

fn time(s: &str, field: &str) -> Result<Timestamp, Rejection> {
    timefmt::parse_epoch_secs_text(s)
        .or_else(|| timefmt::parse_datetime(s))
        .ok_or_else(|| Rejection::bad_timestamp(field, s))
}
