//! Community ID v1 (<https://github.com/corelight/community-id-spec>): a direction-agnostic flow hash that
//! Zeek, Suricata and many other sensors emit, so their reports of one flow can be joined.
//!
//! Written by hand: it is a few lines of SHA-1 over a fixed byte layout, and the Rust crates that exist
//! for it are unmaintained.

use crate::{Event, Str};
use base64::Engine;
use sha1::{Digest, Sha1};
use std::fmt::Write;
use std::net::IpAddr;

/// IANA protocol number for a transport name as sensors write it.
pub fn protocol_number(transport: &str) -> Option<u8> {
    const NAMES: [(&str, u8); 8] = [
        ("tcp", 6),
        ("udp", 17),
        ("icmp", 1),
        ("ipv6-icmp", 58),
        ("icmpv6", 58),
        ("icmp6", 58),
        ("rsvp", 46),
        ("sctp", 132),
    ];
    // Compared case-insensitively in place: lowercasing into a `String` was an allocation per event.
    NAMES
        .iter()
        .find(|(name, _)| transport.eq_ignore_ascii_case(name))
        .map(|&(_, n)| n)
        .or_else(|| transport.parse().ok())
}

/// The Community ID of an event's tuple, when the event has one.
pub fn for_event(e: &Event) -> Option<Str> {
    let proto = e
        .network
        .iana_number
        .or_else(|| e.network.transport.as_deref().and_then(protocol_number))?;
    let (s, d) = (e.source.ip?, e.destination.ip?);
    Some(text(&digest(
        proto,
        s,
        d,
        e.source.port,
        e.destination.port,
        0,
    )))
}

/// `1:` and the digest's base64, written into a stack buffer and copied once: two `String`s (the base64,
/// then the `1:` prefix in front) grew and copied on most events (~0.5% of a replay's instructions).
fn text(digest: &[u8; 20]) -> Str {
    let mut text = [0u8; 2 + BASE64_LEN];
    text[..2].copy_from_slice(b"1:");
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut text[2..])
        .expect("the buffer holds a SHA-1 digest's base64");
    Str::from(std::str::from_utf8(&text[..2 + n]).expect("base64 is ASCII"))
}

/// Length of a SHA-1 digest's padded base64.
const BASE64_LEN: usize = 28;

/// Community ID v1 with base64 output (`1:` + base64 of the SHA-1 digest), the form sensors emit.
///
/// For ICMP/ICMPv6, `sport` is the type and `dport` the code; a `dport` that already holds the
/// port equivalent (as Zeek and `community-id-pcap` print it) gives the same result. Ports are hashed
/// only for TCP, UDP, SCTP, ICMP and ICMPv6, and only when both are given.
pub fn compute(
    proto: u8,
    saddr: IpAddr,
    daddr: IpAddr,
    sport: Option<u16>,
    dport: Option<u16>,
    seed: u16,
) -> String {
    text(&digest(proto, saddr, daddr, sport, dport, seed)).into()
}

/// Community ID v1 with hex output (`1:` + lowercase hex of the SHA-1 digest). Same inputs as [`compute`].
pub fn compute_hex(
    proto: u8,
    saddr: IpAddr,
    daddr: IpAddr,
    sport: Option<u16>,
    dport: Option<u16>,
    seed: u16,
) -> String {
    let digest = digest(proto, saddr, daddr, sport, dport, seed);
    let mut out = String::with_capacity(2 + 2 * digest.len());
    out.push_str("1:");
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The raw SHA-1 digest behind a Community ID v1:
/// `sha1(seed:u16be . saddr . daddr . proto:u8 . 0x00 [. sport:u16be . dport:u16be])`,
/// with the endpoints ordered so that the smaller (address, port) comes first, except for one-way
/// ICMP/ICMPv6 messages, which keep their direction.
pub fn digest(
    proto: u8,
    saddr: IpAddr,
    daddr: IpAddr,
    sport: Option<u16>,
    dport: Option<u16>,
    seed: u16,
) -> [u8; 20] {
    let ports = match (sport, dport) {
        (Some(sp), Some(dp)) if has_ports(proto) => Some(port_equivalents(proto, sp, dp)),
        _ => None,
    };
    let (mut sa, mut da) = (Octets::of(saddr), Octets::of(daddr));
    let (mut sp, mut dp, one_way) = ports.unwrap_or((0, 0, false));
    if !one_way && (sa.bytes(), sp) > (da.bytes(), dp) {
        std::mem::swap(&mut sa, &mut da);
        std::mem::swap(&mut sp, &mut dp);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(sa.bytes());
    h.update(da.bytes());
    h.update([proto, 0]);
    if ports.is_some() {
        h.update(sp.to_be_bytes());
        h.update(dp.to_be_bytes());
    }
    h.finalize().into()
}

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

/// Protocols whose tuple has ports (or ICMP type/code standing in for them).
fn has_ports(proto: u8) -> bool {
    matches!(proto, ICMP | 6 | 17 | ICMPV6 | 132)
}

/// An address as network-byte-order bytes (4 for IPv4, 16 for IPv6), without allocating.
#[derive(Clone, Copy)]
struct Octets {
    buf: [u8; 16],
    len: usize,
}

impl Octets {
    fn of(ip: IpAddr) -> Self {
        let mut buf = [0; 16];
        match ip {
            IpAddr::V4(v) => {
                buf[..4].copy_from_slice(&v.octets());
                Octets { buf, len: 4 }
            }
            IpAddr::V6(v) => Octets {
                buf: v.octets(),
                len: 16,
            },
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The (sport, dport, one_way) the spec hashes. Ports pass through unchanged; for ICMP/ICMPv6,
/// sport is the type and dport the counterpart type of a request/reply pair, or the code (and the
/// message is one-way, so the endpoints keep their order) for any other type.
///
/// Because a paired type ignores the code, feeding in an already mapped pair (type, counterpart)
/// yields the same result as (type, code).
fn port_equivalents(proto: u8, sport: u16, dport: u16) -> (u16, u16, bool) {
    let counterpart = match proto {
        ICMP => icmp_counterpart(sport),
        ICMPV6 => icmp6_counterpart(sport),
        _ => return (sport, dport, false),
    };
    match counterpart {
        Some(c) => (sport, c, false),
        None => (sport, dport, true),
    }
}

/// ICMPv4 request/reply pairs: echo, timestamp, information, router solicitation/advertisement,
/// address mask.
fn icmp_counterpart(icmp_type: u16) -> Option<u16> {
    Some(match icmp_type {
        8 => 0,
        0 => 8,
        13 => 14,
        14 => 13,
        15 => 16,
        16 => 15,
        10 => 9,
        9 => 10,
        17 => 18,
        18 => 17,
        _ => return None,
    })
}

/// ICMPv6 request/reply pairs: echo, MLD listener query/report, router solicitation/advertisement,
/// neighbor solicitation/advertisement, node information query/response, home agent address
/// discovery request/reply.
fn icmp6_counterpart(icmp_type: u16) -> Option<u16> {
    Some(match icmp_type {
        128 => 129,
        129 => 128,
        130 => 131,
        131 => 130,
        133 => 134,
        134 => 133,
        135 => 136,
        136 => 135,
        139 => 140,
        140 => 139,
        144 => 145,
        145 => 144,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_names_and_numbers_give_protocol_numbers() {
        for (name, n) in [
            ("tcp", Some(6)),
            ("TCP", Some(6)),
            ("Udp", Some(17)),
            ("icmp", Some(1)),
            ("IPv6-ICMP", Some(58)),
            ("icmp6", Some(58)),
            ("sctp", Some(132)),
            ("rsvp", Some(46)),
            ("47", Some(47)),
            ("gre", None),
            ("tcpx", None),
            ("", None),
            ("256", None),
        ] {
            assert_eq!(protocol_number(name), n, "{name:?}");
        }
    }
}
