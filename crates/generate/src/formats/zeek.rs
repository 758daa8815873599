//! Zeek JSON logs from a tap inside the firewall: conn, dns and http, as the JSON streaming writer
//! emits them (with `_path`, and `community_id` from the community-id package). Inside the NAT, so
//! always the inside tuple.

use super::{Body, Ctx, Written};
use crate::session::dns_flow;
use crate::text::{epoch_micros, Obj};
use crate::world::{Transport, Zone};
use rand::rngs::SmallRng;
use rand::Rng;
use std::net::Ipv4Addr;
use storyline_model::{community_id, Timestamp};

const UID_SALT_CONN: u64 = 0x5a11;
const UID_SALT_DNS: u64 = 0xd115;
const FUID_SALT: u64 = 0xf11e;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Zeek-style uid: a letter prefix and 17 base62 characters.
fn uid(prefix: char, a: u64, b: u64) -> String {
    let mut out = String::with_capacity(18);
    out.push(prefix);
    let mut v = (u128::from(a) << 64) | u128::from(b);
    for _ in 0..17 {
        out.push(BASE62[(v % 62) as usize] as char);
        v /= 62;
    }
    out
}

fn conn_uid(ctx: &Ctx, salt: u64) -> String {
    uid('C', ctx.mix(salt), ctx.mix(salt + 1))
}

fn secs(ns: i64) -> String {
    format!("{:.6}", ns as f64 / 1e9)
}

fn tuple(o: &mut Obj, oh: Ipv4Addr, op: u16, rh: Ipv4Addr, rp: u16) {
    o.str("id.orig_h", &oh.to_string())
        .num("id.orig_p", op)
        .str("id.resp_h", &rh.to_string())
        .num("id.resp_p", rp);
}

struct ConnFacts<'a> {
    ts: Timestamp,
    uid: String,
    orig: (Ipv4Addr, u16),
    resp: (Ipv4Addr, u16),
    transport: Transport,
    service: Option<&'a str>,
    duration_ns: i64,
    orig_bytes: u64,
    resp_bytes: u64,
    orig_pkts: u64,
    resp_pkts: u64,
    reset: bool,
    local_resp: bool,
}

fn conn_record(c: ConnFacts) -> Obj {
    let (state, history) = match (c.transport, c.reset) {
        (Transport::Udp, _) => ("SF", "Dd"),
        (Transport::Tcp, true) => ("RSTR", "ShADadr"),
        (Transport::Tcp, false) => ("SF", "ShADadFf"),
    };
    let hdr = match c.transport {
        Transport::Tcp => 40,
        Transport::Udp => 28,
    };
    let cid = community_id::compute(
        c.transport.number(),
        c.orig.0.into(),
        c.resp.0.into(),
        Some(c.orig.1),
        Some(c.resp.1),
        0,
    );
    let mut o = Obj::new(640);
    o.str("_path", "conn")
        .raw("ts", &epoch_micros(c.ts))
        .str("uid", &c.uid);
    tuple(&mut o, c.orig.0, c.orig.1, c.resp.0, c.resp.1);
    o.str("proto", c.transport.name());
    if let Some(svc) = c.service {
        o.str("service", svc);
    }
    o.raw("duration", &secs(c.duration_ns))
        .num("orig_bytes", c.orig_bytes)
        .num("resp_bytes", c.resp_bytes)
        .str("conn_state", state)
        .bool("local_orig", true)
        .bool("local_resp", c.local_resp)
        .num("missed_bytes", 0)
        .str("history", history)
        .num("orig_pkts", c.orig_pkts)
        .num("orig_ip_bytes", c.orig_bytes + c.orig_pkts * hdr)
        .num("resp_pkts", c.resp_pkts)
        .num("resp_ip_bytes", c.resp_bytes + c.resp_pkts * hdr)
        .str("community_id", &cid);
    o
}

pub fn conn(ctx: &Ctx) -> Written {
    let s = ctx.s;
    let ts = ctx.clock(s.start);
    let o = conn_record(ConnFacts {
        ts,
        uid: conn_uid(ctx, UID_SALT_CONN),
        orig: (s.client_ip, s.client_port),
        resp: (s.server_ip, s.service.port),
        transport: s.transport(),
        service: s.service.app,
        duration_ns: s.duration_ns,
        orig_bytes: s.bytes_out,
        resp_bytes: s.bytes_in,
        orig_pkts: s.pkts_out,
        resp_pkts: s.pkts_in,
        reset: s.reset,
        local_resp: s.zone != Zone::Internet,
    });
    Written {
        body: Body::Json(o),
        own_id: None,
        time: micros(ts),
    }
}

pub fn dns_conn(ctx: &Ctx) -> Written {
    let s = ctx.s;
    let d = s.dns.as_ref().expect("planned only with a lookup");
    let (oh, op, rh, rp, svc) = dns_flow(s, d);
    let ts = ctx.clock(d.time);
    let qlen = s.server_name.len() as u64 + 18;
    let o = conn_record(ConnFacts {
        ts,
        uid: conn_uid(ctx, UID_SALT_DNS),
        orig: (oh, op),
        resp: (rh, rp),
        transport: svc.transport,
        service: svc.app,
        duration_ns: d.rtt_ns,
        orig_bytes: qlen,
        resp_bytes: qlen + 16,
        orig_pkts: 1,
        resp_pkts: 1,
        reset: false,
        local_resp: true,
    });
    Written {
        body: Body::Json(o),
        own_id: None,
        time: micros(ts),
    }
}

pub fn dns(ctx: &Ctx) -> Written {
    let s = ctx.s;
    let d = s.dns.as_ref().expect("planned only with a lookup");
    let (oh, op, rh, rp, _) = dns_flow(s, d);
    let ts = ctx.clock(d.time);
    let answer = s.server_ip.to_string();
    let mut o = Obj::new(640);
    o.str("_path", "dns")
        .raw("ts", &epoch_micros(ts))
        .str("uid", &conn_uid(ctx, UID_SALT_DNS));
    tuple(&mut o, oh, op, rh, rp);
    o.str("proto", "udp")
        .num("trans_id", d.trans_id)
        .raw("rtt", &secs(d.rtt_ns))
        .str("query", &s.server_name)
        .num("qclass", 1)
        .str("qclass_name", "C_INTERNET")
        .num("qtype", 1)
        .str("qtype_name", "A")
        .num("rcode", 0)
        .str("rcode_name", "NOERROR")
        .bool("AA", s.zone != Zone::Internet)
        .bool("TC", false)
        .bool("RD", true)
        .bool("RA", true)
        .num("Z", 0)
        .strs("answers", &[answer.as_str()])
        .raw("TTLs", &format!("[{}.0]", d.ttl))
        .bool("rejected", false);
    Written {
        body: Body::Json(o),
        own_id: None,
        time: micros(ts),
    }
}

pub fn http(ctx: &Ctx) -> Written {
    let s = ctx.s;
    let h = s.http.as_ref().expect("planned only for HTTP sessions");
    let ts = ctx.clock(ctx.occurred);
    let fuid = uid('F', ctx.mix(FUID_SALT), ctx.mix(FUID_SALT + 1));
    let mut o = Obj::new(768);
    o.str("_path", "http")
        .raw("ts", &epoch_micros(ts))
        .str("uid", &conn_uid(ctx, UID_SALT_CONN));
    tuple(
        &mut o,
        s.client_ip,
        s.client_port,
        s.server_ip,
        s.service.port,
    );
    o.num("trans_depth", 1)
        .str("method", h.method)
        .str("host", &s.server_name)
        .str("uri", &h.uri)
        .str("version", "1.1")
        .str("user_agent", h.user_agent)
        .num("request_body_len", h.request_len)
        .num("response_body_len", h.response_len)
        .num("status_code", h.status)
        .str("status_msg", status_msg(h.status))
        .raw("tags", "[]")
        .strs("resp_fuids", &[fuid.as_str()])
        .strs("resp_mime_types", &[h.mime]);
    Written {
        body: Body::Json(o),
        own_id: None,
        time: micros(ts),
    }
}

pub fn ssl(ctx: &Ctx, rng: &mut SmallRng) -> Written {
    let s = ctx.s;
    let ts = ctx.clock(ctx.occurred);
    let v13 = rng.random_bool(0.8);
    let mut o = Obj::new(640);
    o.str("_path", "ssl")
        .raw("ts", &epoch_micros(ts))
        .str("uid", &conn_uid(ctx, UID_SALT_CONN));
    tuple(
        &mut o,
        s.client_ip,
        s.client_port,
        s.server_ip,
        s.service.port,
    );
    o.str("version", if v13 { "TLSv13" } else { "TLSv12" })
        .str(
            "cipher",
            if v13 {
                "TLS_AES_128_GCM_SHA256"
            } else {
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
            },
        )
        .str("curve", "x25519")
        .str("server_name", &s.server_name)
        .bool("resumed", rng.random_bool(0.2))
        .bool("established", !s.reset)
        .str("ssl_history", if v13 { "CsiI" } else { "CsxknGIi" });
    Written {
        body: Body::Json(o),
        own_id: None,
        time: micros(ts),
    }
}

fn status_msg(code: u16) -> &'static str {
    match code {
        200 => "OK",
        301 => "Moved Permanently",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Unknown",
    }
}

/// Zeek writes microseconds; the parser can see no finer.
fn micros(t: Timestamp) -> Timestamp {
    Timestamp(t.as_nanos().div_euclid(1000) * 1000)
}
