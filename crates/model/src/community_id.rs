//! Community ID v1 (https://github.com/corelight/community-id-spec): a direction-agnostic flow hash that
//! Zeek, Suricata and many other sensors emit, so their reports of one flow can be joined.
//!
//! Written by hand: it is a few lines of SHA-1 over a fixed byte layout, and the Rust crates that exist
//! for it are unmaintained.

use crate::{Event, Str};
use base64::Engine;
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// IANA protocol number for a transport name as sensors write it.
pub fn protocol_number(transport: &str) -> Option<u8> {
    Some(match transport.to_ascii_lowercase().as_str() {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "rsvp" => 46,
        "ipv6-icmp" | "icmpv6" | "icmp6" => 58,
        "sctp" => 132,
        other => return other.parse().ok(),
    })
}

/// The Community ID of an event's tuple, when the event has one.
pub fn for_event(e: &Event) -> Option<Str> {
    let proto = e
        .network
        .iana_number
        .or_else(|| e.network.transport.as_deref().and_then(protocol_number))?;
    let (s, d) = (e.source.ip?, e.destination.ip?);
    Some(compute(proto, s, d, e.source.port, e.destination.port, 0).into())
}

/// Community ID v1 with base64 output. For ICMP/ICMPv6, `sport` is the type and `dport` the code.
pub fn compute(
    proto: u8,
    saddr: IpAddr,
    daddr: IpAddr,
    sport: Option<u16>,
    dport: Option<u16>,
    seed: u16,
) -> String {
    let digest = digest(proto, saddr, daddr, sport, dport, seed);
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

pub fn digest(
    proto: u8,
    saddr: IpAddr,
    daddr: IpAddr,
    sport: Option<u16>,
    dport: Option<u16>,
    seed: u16,
) -> [u8; 20] {
    let (mut sa, mut da, mut sp, mut dp) = (saddr, daddr, sport, dport);
    let ports = matches!(proto, 6 | 17 | 132 | 1 | 58) && sp.is_some() && dp.is_some();
    let mut one_way = false;
    if ports && (proto == 1 || proto == 58) {
        let (t, c) = (sp.unwrap_or(0), dp.unwrap_or(0));
        let (np, ow) = icmp_port_equivalent(proto, t, c);
        sp = Some(t);
        dp = Some(np);
        one_way = ow;
    }
    let ordered = one_way || (ip_bytes(sa), sp) < (ip_bytes(da), dp);
    let _ = ordered;
    let swap = !one_way && (ip_bytes(sa), sp) > (ip_bytes(da), dp);
    if swap {
        std::mem::swap(&mut sa, &mut da);
        std::mem::swap(&mut sp, &mut dp);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(ip_bytes(sa));
    h.update(ip_bytes(da));
    h.update([proto, 0]);
    if ports {
        h.update(sp.unwrap_or(0).to_be_bytes());
        h.update(dp.unwrap_or(0).to_be_bytes());
    }
    h.finalize().into()
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// Maps ICMP type/code to the "port" pair the spec hashes, and whether the message is one-way.
fn icmp_port_equivalent(proto: u8, icmp_type: u16, code: u16) -> (u16, bool) {
    let pairs: &[(u16, u16)] = if proto == 1 {
        &[
            (8, 0),
            (0, 8),
            (13, 14),
            (14, 13),
            (15, 16),
            (16, 15),
            (10, 9),
            (9, 10),
            (17, 18),
            (18, 17),
        ]
    } else {
        &[
            (128, 129),
            (129, 128),
            (133, 134),
            (134, 133),
            (135, 136),
            (136, 135),
            (130, 131),
            (131, 130),
            (144, 145),
            (145, 144),
            (146, 147),
            (147, 146),
        ]
    };
    match pairs.iter().find(|(t, _)| *t == icmp_type) {
        Some((_, counter)) => (*counter, false),
        None => (code, true),
    }
}
