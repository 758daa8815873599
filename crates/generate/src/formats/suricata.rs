//! Suricata EVE JSON: flow, tls and the occasional alert. The sensor sits outside the firewall (edge and
//! DMZ), so for NATed sessions it sees the public NAT address as source; its `community_id` is that of
//! the tuple it saw, which deliberately differs from the inside sensors' for NATed sessions.

use super::{Body, Ctx, Written};
use crate::text::{suricata_time, Obj};
use crate::world::Transport;
use rand::rngs::SmallRng;
use rand::Rng;
use std::net::Ipv4Addr;
use storyline_model::{community_id, Timestamp};

const FLOW_ID_SALT: u64 = 0xf10;

struct Alert {
    sid: u32,
    rev: u32,
    signature: &'static str,
    category: &'static str,
    severity: u8,
}

const ALERTS: [Alert; 4] = [
    Alert {
        sid: 2013028,
        rev: 7,
        signature: "ET POLICY curl User-Agent Outbound",
        category: "Attempted Information Leak",
        severity: 2,
    },
    Alert {
        sid: 2027865,
        rev: 4,
        signature: "ET INFO Observed DNS Query to .cloud TLD",
        category: "Potentially Bad Traffic",
        severity: 2,
    },
    Alert {
        sid: 2210045,
        rev: 2,
        signature: "SURICATA STREAM Packet with invalid ack",
        category: "Generic Protocol Command Decode",
        severity: 3,
    },
    Alert {
        sid: 2018959,
        rev: 4,
        signature: "ET POLICY PE EXE or DLL Windows file download HTTP",
        category: "Potential Corporate Privacy Violation",
        severity: 1,
    },
];

/// The tuple as seen from outside the firewall.
fn seen(ctx: &Ctx) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let s = ctx.s;
    (
        s.nat.unwrap_or((s.client_ip, s.client_port)),
        (s.server_ip, s.service.port),
    )
}

fn app_proto(ctx: &Ctx) -> Option<&'static str> {
    match ctx.s.service.app? {
        "ssl" => Some("tls"),
        "krb_tcp" => Some("krb5"),
        other => Some(other),
    }
}

/// Common head of every EVE record of this flow.
fn head(ctx: &Ctx, ts: Timestamp, event_type: &str) -> Obj {
    let ((sip, sp), (dip, dp)) = seen(ctx);
    let t = ctx.s.transport();
    let flow_id = ctx.mix(FLOW_ID_SALT) & ((1 << 52) - 1);
    let mut o = Obj::new(768);
    o.str("timestamp", &suricata_time(ts))
        .num("flow_id", flow_id)
        .str("in_iface", "eth1")
        .str("event_type", event_type)
        .str("src_ip", &sip.to_string())
        .num("src_port", sp)
        .str("dest_ip", &dip.to_string())
        .num("dest_port", dp)
        .str("proto", if t == Transport::Tcp { "TCP" } else { "UDP" })
        .str(
            "community_id",
            &community_id::compute(t.number(), sip.into(), dip.into(), Some(sp), Some(dp), 0),
        );
    o
}

fn flow_counters(o: &mut Obj, ctx: &Ctx, end: bool) {
    let s = ctx.s;
    o.open("flow")
        .num("pkts_toserver", s.pkts_out)
        .num("pkts_toclient", s.pkts_in)
        .num("bytes_toserver", s.bytes_out)
        .num("bytes_toclient", s.bytes_in)
        .str("start", &suricata_time(ctx.clock(s.start)));
    if end {
        let state = match (s.transport(), s.reset) {
            (Transport::Udp, _) => "established",
            (Transport::Tcp, _) => "closed",
        };
        o.str("end", &suricata_time(ctx.clock(s.end())))
            .num("age", s.duration_ns / 1_000_000_000)
            .str("state", state)
            .str("reason", "timeout")
            .bool("alerted", false);
    }
    o.close();
}

pub fn flow(ctx: &Ctx) -> Written {
    let s = ctx.s;
    // Suricata stamps a flow record with the flow's first packet.
    let ts = ctx.clock(s.start);
    let mut o = head(ctx, ts, "flow");
    if let Some(app) = app_proto(ctx) {
        o.str("app_proto", app);
    }
    flow_counters(&mut o, ctx, true);
    if s.transport() == Transport::Tcp {
        let flags = if s.reset { "1f" } else { "1b" };
        o.open("tcp")
            .str("tcp_flags", flags)
            .str("tcp_flags_ts", "1b")
            .str("tcp_flags_tc", flags)
            .bool("syn", true)
            .bool("fin", !s.reset)
            .bool("rst", s.reset)
            .bool("psh", true)
            .bool("ack", true)
            .str("state", "closed")
            .close();
    }
    Written {
        body: Body::Json(o),
        own_id: None,
        time: micros(ts),
    }
}

pub fn tls(ctx: &Ctx, rng: &mut SmallRng) -> Written {
    let s = ctx.s;
    let ts = ctx.clock(ctx.occurred);
    let mut o = head(ctx, ts, "tls");
    let v13 = rng.random_bool(0.8);
    o.open("tls");
    if !v13 {
        o.str("subject", &format!("CN={}", s.server_name))
            .str("issuerdn", "C=US, O=Let's Encrypt, CN=R11")
            .str("serial", &format!("{:016X}", ctx.mix(0x5e7)));
    }
    o.str("sni", &s.server_name)
        .str("version", if v13 { "TLS 1.3" } else { "TLS 1.2" })
        .open("ja3")
        .str(
            "hash",
            &format!("{:016x}{:016x}", ctx.mix(0x1a3), ctx.mix(0x1a4)),
        )
        .close()
        .close();
    Written {
        body: Body::Json(o),
        own_id: None,
        time: micros(ts),
    }
}

pub fn alert(ctx: &Ctx, rng: &mut SmallRng) -> Written {
    let ts = ctx.clock(ctx.occurred);
    let a = &ALERTS[rng.random_range(0..ALERTS.len())];
    let mut o = head(ctx, ts, "alert");
    o.num("tx_id", 0)
        .open("alert")
        .str("action", "allowed")
        .num("gid", 1)
        .num("signature_id", a.sid)
        .num("rev", a.rev)
        .str("signature", a.signature)
        .str("category", a.category)
        .num("severity", a.severity)
        .close();
    if let Some(app) = app_proto(ctx) {
        o.str("app_proto", app);
    }
    flow_counters(&mut o, ctx, false);
    Written {
        body: Body::Json(o),
        own_id: None,
        time: micros(ts),
    }
}

fn micros(t: Timestamp) -> Timestamp {
    Timestamp(t.as_nanos().div_euclid(1000) * 1000)
}
