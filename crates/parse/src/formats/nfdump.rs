//! NetFlow v5/v9 and IPFIX flows as exported by nfdump: `nfdump -o csv` lines and `nfdump -o json`
//! (or `-o json-log`, one object per line) objects.
//!
//! CSV columns follow nfdump's csv output (nfdump(1) man page and the csv header it prints:
//! `ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,...`).
//! With a header line seen first (see [`crate::HeaderTracker`]) the columns are found by name, so
//! reordered or shortened exports work; a bare line is read in that default order. Required: `ts`,
//! `sa`, `da`, `pr`. JSON keys follow nfdump 1.7's json output (`t_first`, `t_last`, `proto`,
//! `src4_addr`/`src6_addr`, `src_port`, `in_packets`, `in_bytes`, `out_packets`, `out_bytes`,
//! `direction`); nfdump 1.6's `first`/`last` are accepted too.
//!
//! nfdump prints times without a zone, in the local time of the machine running it; run it with
//! `TZ=UTC`, as UTC is assumed. `in`/`i*` counters are the flow's own direction (source to
//! destination); `out`/`o*` counters are only set by bidirectional exporters (NSEL, IPFIX biflows),
//! so zero there means "not reported". No own id: the content hash.

use super::columns::{utf8, Col, Columns, Row};
use super::common::{categorize, observer, set_transport};
use crate::error::Rejection;
use crate::json::{self, Obj, COUNT_EXPECTED, PORT_EXPECTED};
use crate::timefmt;
use std::sync::OnceLock;
use storyline_model::{Event, Str, Timestamp};

/// nfdump's csv column order.
const DEFAULT: &[&str] = &[
    "ts", "te", "td", "sa", "da", "sp", "dp", "pr", "flg", "fwd", "stos", "ipkt", "ibyt", "opkt",
    "obyt", "in", "out", "sas", "das", "smk", "dmk", "dtos", "dir", "nh", "nhb", "svln", "dvln",
    "ismc", "odmc", "idmc", "osmc", "mpls1", "mpls2", "mpls3", "mpls4", "mpls5", "mpls6", "mpls7",
    "mpls8", "mpls9", "mpls10", "cl", "sl", "al", "ra", "eng", "exid", "tr",
];

const TIME_HINT: &str = "nfdump csv starts with ts (first seen), like 2026-11-21 10:00:00.123";

/// Where the columns this parser reads are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    ts: Col,
    te: Col,
    td: Col,
    sa: Col,
    da: Col,
    sp: Col,
    dp: Col,
    pr: Col,
    ipkt: Col,
    ibyt: Col,
    opkt: Col,
    obyt: Col,
    dir: Col,
    width: usize,
    /// Columns up to the last one read.
    used: usize,
}

impl Layout {
    pub(crate) fn new(cols: &Columns) -> Self {
        let c = |a: &[&'static str]| Col::find(cols, a);
        let mut l = Layout {
            ts: c(&["ts"]),
            te: c(&["te"]),
            td: c(&["td"]),
            sa: c(&["sa"]),
            da: c(&["da"]),
            sp: c(&["sp"]),
            dp: c(&["dp"]),
            pr: c(&["pr"]),
            ipkt: c(&["ipkt", "pkt"]),
            ibyt: c(&["ibyt", "byt"]),
            opkt: c(&["opkt"]),
            obyt: c(&["obyt"]),
            dir: c(&["dir"]),
            width: cols.0.len(),
            used: 0,
        };
        l.used = [
            l.ts, l.te, l.td, l.sa, l.da, l.sp, l.dp, l.pr, l.ipkt, l.ibyt, l.opkt, l.obyt, l.dir,
        ]
        .iter()
        .filter_map(|c| c.at)
        .max()
        .map_or(0, |i| i + 1);
        l
    }
}

fn default_layout() -> &'static Layout {
    static CELL: OnceLock<Layout> = OnceLock::new();
    CELL.get_or_init(|| Layout::new(&Columns::from_names(DEFAULT)))
}

/// An nfdump csv header line: it names the `ts` column (a record has a time there, in any order).
pub(crate) fn header(line: &str) -> Option<Layout> {
    line.split(',')
        .any(|c| c.trim().eq_ignore_ascii_case("ts"))
        .then(|| Layout::new(&Columns::from_line(line)))
}

/// The lines nfdump prints after the flows (`Summary`, then its own header and totals) are not flows.
pub(crate) fn starts_summary(line: &str) -> bool {
    line.trim().eq_ignore_ascii_case("summary")
}

pub(crate) fn parse(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let trimmed = raw.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        return from_json(trimmed, ev);
    }
    let line = utf8(trimmed)?;
    if header(line).is_some() {
        return Err(Rejection::bad_value(
            "ts",
            "\"ts\"",
            "a flow line; this is nfdump's csv header line, skip it",
        ));
    }
    if starts_summary(line) || line.starts_with("flows,") {
        return Err(Rejection::bad_value(
            "record",
            format!("{line:?}"),
            "a flow line; nfdump's summary block is not a flow (run nfdump with -q to omit it)",
        ));
    }
    parse_line(default_layout(), line, ev)
}

/// A csv flow line read with `l`.
pub(crate) fn parse_line(l: &Layout, line: &str, ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let row = Row::split_upto(line, "", l.used);
    if row.fields.len() < 4 {
        return Err(Rejection::missing(
            "sa",
            format!(
                "the line has {} csv fields; nfdump csv lines have {} ({},...)",
                row.fields.len(),
                l.width,
                DEFAULT.get(..8).unwrap_or_default().join(",")
            ),
        ));
    }
    common(ev);
    let ts = row.require(l.ts, TIME_HINT)?;
    ev.timestamp = datetime(ts, "ts")?;
    let end = match row.get(l.te) {
        Some(te) => Some(datetime(te, "te")?),
        None => None,
    };
    ev.event.duration = match row.secs(l.td)? {
        Some(d) => Some(d),
        None => end.map(|e| e.nanos_since(ev.timestamp).max(0)),
    };
    ev.source.ip = Some(
        row.ip(l.sa)?
            .ok_or_else(|| Rejection::missing("sa", "the flow's source address"))?,
    );
    ev.destination.ip = Some(
        row.ip(l.da)?
            .ok_or_else(|| Rejection::missing("da", "the flow's destination address"))?,
    );
    ev.source.port = row.port(l.sp)?;
    ev.destination.port = row.port(l.dp)?;
    let pr = row.require(l.pr, "the flow's protocol, like TCP or 6")?;
    check_proto(pr, "pr")?;
    set_transport(ev, pr);
    ev.source.packets = row.count(l.ipkt)?;
    ev.source.bytes = row.count(l.ibyt)?;
    ev.destination.packets = row.count(l.opkt)?.filter(|n| *n > 0);
    ev.destination.bytes = row.count(l.obyt)?.filter(|n| *n > 0);
    ev.network.direction = match row.num::<u8>(l.dir, "0 (ingress) or 1 (egress)")? {
        Some(d) => direction(d, "dir")?,
        None => None,
    };
    Ok(None)
}

fn common(ev: &mut Event) {
    observer(ev, "sensor", "nfdump", "nfdump");
    categorize(ev, "event", "connection", "nfdump.flow");
}

fn datetime(s: &str, field: &str) -> Result<Timestamp, Rejection> {
    timefmt::parse_datetime(s)
        .or_else(|| timefmt::parse_epoch_secs_text(s))
        .ok_or_else(|| Rejection::bad_timestamp(field, s))
}

/// nfdump prints protocol names or numbers; anything else is not a protocol.
fn check_proto(p: &str, field: &str) -> Result<(), Rejection> {
    let ok = match p.parse::<u16>() {
        Ok(n) => n <= 255,
        Err(_) => p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
    };
    if ok {
        Ok(())
    } else {
        Err(Rejection::bad_value(
            field,
            format!("{p:?}"),
            "a protocol name like TCP or a number 0-255",
        ))
    }
}

fn direction(d: u8, field: &str) -> Result<Option<Str>, Rejection> {
    match d {
        0 => Ok(Some("ingress".into())),
        1 => Ok(Some("egress".into())),
        other => Err(Rejection::bad_value(
            field,
            other,
            "0 (ingress) or 1 (egress)",
        )),
    }
}

fn from_json(raw: &[u8], ev: &mut Event) -> Result<Option<Str>, Rejection> {
    let o = json::parse_object(raw, "an nfdump json record")?;
    if let Some(t) = json::text(&o, "type")? {
        if !t.eq_ignore_ascii_case("flow") {
            return Err(Rejection::bad_value(
                "type",
                format!("{t:?}"),
                "FLOW (other record types carry no flow)",
            ));
        }
    }
    common(ev);
    let (first_key, first) = first_of(&o, &["t_first", "first"])?;
    let first_key = first_key.unwrap_or("t_first");
    let first = first.ok_or_else(|| {
        Rejection::missing(
            "t_first",
            "the flow's first-seen time, like 2026-11-21T10:00:00.123",
        )
    })?;
    ev.timestamp = datetime(&first, first_key)?;
    let (last_key, last) = first_of(&o, &["t_last", "last"])?;
    if let Some(last) = last {
        let end = datetime(&last, last_key.unwrap_or("t_last"))?;
        ev.event.duration = Some(end.nanos_since(ev.timestamp).max(0));
    }
    ev.source.ip = match json::ip(&o, "src4_addr")? {
        Some(ip) => Some(ip),
        None => json::ip(&o, "src6_addr")?,
    };
    ev.destination.ip = match json::ip(&o, "dst4_addr")? {
        Some(ip) => Some(ip),
        None => json::ip(&o, "dst6_addr")?,
    };
    if ev.source.ip.is_none() {
        return Err(Rejection::missing("src4_addr", "src4_addr or src6_addr"));
    }
    if ev.destination.ip.is_none() {
        return Err(Rejection::missing("dst4_addr", "dst4_addr or dst6_addr"));
    }
    ev.source.port = json::uint(&o, "src_port", PORT_EXPECTED)?;
    ev.destination.port = json::uint(&o, "dst_port", PORT_EXPECTED)?;
    let proto: Option<u8> = json::uint(&o, "proto", "an IANA protocol number 0-255, like 6")?;
    match proto {
        Some(p) => super::common::set_transport_number(ev, p.into()),
        None => {
            return Err(Rejection::missing(
                "proto",
                "the flow's IANA protocol number",
            ))
        }
    }
    ev.source.packets = json::uint(&o, "in_packets", COUNT_EXPECTED)?;
    ev.source.bytes = json::uint(&o, "in_bytes", COUNT_EXPECTED)?;
    ev.destination.packets =
        json::uint::<u64>(&o, "out_packets", COUNT_EXPECTED)?.filter(|n| *n > 0);
    ev.destination.bytes = json::uint::<u64>(&o, "out_bytes", COUNT_EXPECTED)?.filter(|n| *n > 0);
    ev.network.direction = match json::uint::<u8>(&o, "direction", "0 (ingress) or 1 (egress)")? {
        Some(d) => direction(d, "direction")?,
        None => None,
    };
    Ok(None)
}

/// The first of `keys` present, as text, with the key it came from.
fn first_of(
    o: &Obj,
    keys: &[&'static str],
) -> Result<(Option<&'static str>, Option<Str>), Rejection> {
    for k in keys {
        if let Some(v) = json::text(o, k)? {
            return Ok((Some(*k), Some(v)));
        }
    }
    Ok((None, None))
}
