//! PAN-OS TRAFFIC log, `end` subtype, as the CSV line a firewall sends over syslog (PAN-OS 10.x field
//! order, without the syslog header).
//!
//! Source/destination are the pre-NAT addresses and the `NAT ...` columns the post-NAT ones, exactly as
//! PAN-OS logs them. A reversed record describes the session from the server's side: its pre-NAT
//! destination is then the public NAT address and the inside client appears as NAT destination, which is
//! what makes such records hard to join.

use super::{Body, Ctx, SensorState, Written};
use crate::text::{floor_secs, panos_time, Civil};
use crate::world::{Transport, Zone};
use std::net::Ipv4Addr;
use storyline_model::Timestamp;

pub const SERIAL: &str = "013201001234";
const DEVICE: &str = "fw-edge-1";

/// Zero-based positions of the columns this writer fills; everything else is left empty.
pub mod col {
    pub const RECEIVE_TIME: usize = 1;
    pub const SERIAL: usize = 2;
    pub const TYPE: usize = 3;
    pub const SUBTYPE: usize = 4;
    pub const GENERATED_TIME: usize = 6;
    pub const SRC: usize = 7;
    pub const DST: usize = 8;
    pub const NATSRC: usize = 9;
    pub const NATDST: usize = 10;
    pub const RULE: usize = 11;
    pub const SRCUSER: usize = 12;
    pub const APP: usize = 14;
    pub const VSYS: usize = 15;
    pub const FROM_ZONE: usize = 16;
    pub const TO_ZONE: usize = 17;
    pub const INBOUND_IF: usize = 18;
    pub const OUTBOUND_IF: usize = 19;
    pub const LOG_ACTION: usize = 20;
    pub const SESSION_ID: usize = 22;
    pub const REPEAT: usize = 23;
    pub const SPORT: usize = 24;
    pub const DPORT: usize = 25;
    pub const NATSPORT: usize = 26;
    pub const NATDPORT: usize = 27;
    pub const FLAGS: usize = 28;
    pub const PROTO: usize = 29;
    pub const ACTION: usize = 30;
    pub const BYTES: usize = 31;
    pub const BYTES_SENT: usize = 32;
    pub const BYTES_RECEIVED: usize = 33;
    pub const PACKETS: usize = 34;
    pub const START: usize = 35;
    pub const ELAPSED: usize = 36;
    pub const CATEGORY: usize = 37;
    pub const SEQNO: usize = 39;
    pub const ACTION_FLAGS: usize = 40;
    pub const SRCLOC: usize = 41;
    pub const DSTLOC: usize = 42;
    pub const PKTS_SENT: usize = 44;
    pub const PKTS_RECEIVED: usize = 45;
    pub const END_REASON: usize = 46;
    pub const DG_HIER_1: usize = 47;
    pub const DEVICE_NAME: usize = 52;
    pub const ACTION_SOURCE: usize = 53;
    pub const RULE_UUID: usize = 65;
    pub const SOURCE_HOSTNAME: usize = 82;
    pub const SESSION_OWNER: usize = 104;
    pub const HIGH_RES_TIME: usize = 105;
    /// Columns in a PAN-OS 10.1 TRAFFIC line (through "Offloaded").
    pub const COUNT: usize = 118;
}

pub fn traffic(ctx: &Ctx, st: &mut SensorState, reversed: bool) -> Written {
    let s = ctx.s;
    let seqno = st.panos_seqno;
    st.panos_seqno += 1;
    let session_id = st.panos_session;
    st.panos_session = st.panos_session.wrapping_add(1).max(1);

    let start = ctx.clock(s.start);
    // The log is generated when the session ends; management stamps receipt a moment later.
    let generated = ctx.clock(s.end());
    let received = Timestamp(generated.as_nanos() + 400_000_000);
    let zero = Ipv4Addr::UNSPECIFIED;
    let inside = (s.client_ip, s.client_port);
    let server = (s.server_ip, s.service.port);
    let public = s.nat.unwrap_or(inside);
    // (src, dst, natsrc, natdst), each (ip, port); 0.0.0.0/0 means "not translated".
    let (src, dst, natsrc, natdst) = match (reversed, s.nat.is_some()) {
        (false, true) => (inside, server, public, (zero, 0)),
        (false, false) => (inside, server, (zero, 0), (zero, 0)),
        (true, true) => (server, public, (zero, 0), inside),
        (true, false) => (server, inside, (zero, 0), (zero, 0)),
    };
    let (from, to) = if reversed {
        (s.zone.panos(), "trust")
    } else {
        ("trust", s.zone.panos())
    };
    let (in_if, out_if) = if reversed {
        (s.zone.interface(), "ethernet1/2")
    } else {
        ("ethernet1/2", s.zone.interface())
    };
    let (sent, received_bytes, pkts_sent, pkts_received) = if reversed {
        (s.bytes_in, s.bytes_out, s.pkts_in, s.pkts_out)
    } else {
        (s.bytes_out, s.bytes_in, s.pkts_out, s.pkts_in)
    };
    let (rule, category, dstloc) = match s.zone {
        Zone::Internet => (
            "allow-outbound-web",
            "computer-and-internet-info",
            "United States",
        ),
        Zone::Dmz => ("trust-to-dmz", "any", "172.16.0.0-172.31.255.255"),
        Zone::DataCenter => ("trust-to-datacenter", "any", "10.0.0.0-10.255.255.255"),
    };
    let end_reason = match (s.transport(), s.reset) {
        (Transport::Udp, _) => "aged-out",
        (Transport::Tcp, true) => "tcp-rst-from-server",
        (Transport::Tcp, false) => "tcp-fin",
    };
    let srcloc = if reversed {
        dstloc
    } else {
        "10.0.0.0-10.255.255.255"
    };
    let dstloc = if reversed {
        "10.0.0.0-10.255.255.255"
    } else {
        dstloc
    };

    let mut f: Vec<String> = vec![String::new(); col::COUNT];
    let mut set = |i: usize, v: String| f[i] = v;
    set(0, "1".into());
    set(col::RECEIVE_TIME, panos_time(received));
    set(col::SERIAL, SERIAL.into());
    set(col::TYPE, "TRAFFIC".into());
    set(col::SUBTYPE, "end".into());
    set(5, "2561".into());
    set(col::GENERATED_TIME, panos_time(generated));
    set(col::SRC, src.0.to_string());
    set(col::DST, dst.0.to_string());
    set(col::NATSRC, natsrc.0.to_string());
    set(col::NATDST, natdst.0.to_string());
    set(col::RULE, rule.into());
    if !reversed {
        set(col::SRCUSER, format!("corp\\{}", ctx.client.user));
    }
    set(col::APP, s.service.panos_app.into());
    set(col::VSYS, "vsys1".into());
    set(col::FROM_ZONE, from.into());
    set(col::TO_ZONE, to.into());
    set(col::INBOUND_IF, in_if.into());
    set(col::OUTBOUND_IF, out_if.into());
    set(col::LOG_ACTION, "default".into());
    set(21, panos_time(generated));
    set(col::SESSION_ID, session_id.to_string());
    set(col::REPEAT, "1".into());
    set(col::SPORT, src.1.to_string());
    set(col::DPORT, dst.1.to_string());
    set(col::NATSPORT, natsrc.1.to_string());
    set(col::NATDPORT, natdst.1.to_string());
    set(
        col::FLAGS,
        if s.nat.is_some() {
            "0x400064"
        } else {
            "0x400000"
        }
        .into(),
    );
    set(col::PROTO, s.transport().name().into());
    set(col::ACTION, "allow".into());
    set(col::BYTES, (sent + received_bytes).to_string());
    set(col::BYTES_SENT, sent.to_string());
    set(col::BYTES_RECEIVED, received_bytes.to_string());
    set(col::PACKETS, (pkts_sent + pkts_received).to_string());
    set(col::START, panos_time(start));
    set(col::ELAPSED, (s.duration_ns / 1_000_000_000).to_string());
    set(col::CATEGORY, category.into());
    set(38, "0".into());
    set(col::SEQNO, seqno.to_string());
    set(col::ACTION_FLAGS, "0x0".into());
    set(col::SRCLOC, srcloc.into());
    set(col::DSTLOC, dstloc.into());
    set(43, "0".into());
    set(col::PKTS_SENT, pkts_sent.to_string());
    set(col::PKTS_RECEIVED, pkts_received.to_string());
    set(col::END_REASON, end_reason.into());
    for i in col::DG_HIER_1..col::DG_HIER_1 + 4 {
        set(i, "0".into());
    }
    set(col::DEVICE_NAME, DEVICE.into());
    set(col::ACTION_SOURCE, "from-policy".into());
    set(58, "0".into()); // parent session id
    set(62, "0".into()); // SCTP association id
    set(63, "0".into());
    set(64, "0".into());
    set(
        col::RULE_UUID,
        "9f3c2a1e-5b7d-4e2f-8a6c-1d0e9b8a7c6f".into(),
    );
    set(66, "0".into()); // HTTP/2 connection
    set(67, "0".into()); // app flap count
    if !reversed {
        set(col::SOURCE_HOSTNAME, ctx.client.host.clone());
    }
    set(col::SESSION_OWNER, DEVICE.into());
    set(col::HIGH_RES_TIME, high_res(generated));

    Written {
        body: Body::Line(f.join(",")),
        own_id: Some(format!("{SERIAL}:{seqno}")),
        time: floor_secs(generated),
    }
}

/// `2026-11-21T10:00:00.123+00:00`, the millisecond "High Resolution Timestamp" column.
fn high_res(t: Timestamp) -> String {
    let c = Civil::of(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 1_000_000
    )
}
