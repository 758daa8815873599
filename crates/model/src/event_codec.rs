//! The store's binary form of an [`Event`].
//!
//! Written by hand, not derived: through serde, postcard spent ~6,400 instructions decoding one event
//! and ~3,000 encoding it (callgrind, docs/benchmarks.md thirteenth sitting), ~15% of a replay's
//! instructions. An event has ~50 optional fields of which a few are set; serde visits every one (a tag,
//! a visitor call, a nested struct's sequence), and validates each string's UTF-8 on its own. Here one
//! bit per optional field says which follow, and an ASCII string (nearly all of them) is checked a word
//! at a time. No binary serializer derives for the `CompactString` fields without a serde detour.
//!
//! Layout: [`MAGIC`]; `@timestamp` (i64 LE); the presence bits (u64 LE: bit `i` set = the field numbered
//! `i` in `optional_fields!` is present, bits 46 and 47 = the two lists are not empty); `event.id`;
//! `observer.name`; then each present field in bit order.
//! A string is its length (LEB128) and its bytes; an integer is LEB128 (`i64`s zigzag-encoded, except
//! timestamps: 8 bytes LE); an address is 4 or 16 followed by that many bytes. `dns.answers` and
//! `related.ip` are a count and their elements; an answer is its `data`, a byte of presence bits (`type`,
//! `ttl`) and those.
//!
//! Events stored before this form are postcard: [`decode`] reads both. The magic can never begin a
//! postcard event: postcard starts with the timestamp as a LEB128 varint of at most 10 bytes whose tenth
//! holds one bit, and the magic is ten bytes with the continuation bit set.

use crate::event::{
    Dns, DnsAnswer, DnsQuestion, Endpoint, Event, EventMeta, Http, HttpRequest, HttpResponse,
    Named, Nat, Network, Observer, Process, Related, Session, Tls, Url,
};
use crate::{Str, Timestamp};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Marks an event in this form (see the module docs for why postcard cannot start this way). Its last
/// byte is the form's version.
pub const MAGIC: [u8; 10] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x81];

/// Why stored bytes are not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn err(what: &str) -> DecodeError {
    DecodeError(what.to_string())
}

/// The optional fields in their bit order. Appending is fine; reordering or removing needs a new version.
macro_rules! optional_fields {
    ($m:ident, $e:expr, $arg:expr) => {{
        $m!($arg, 0, $e.event.ingested, ts);
        $m!($arg, 1, $e.event.kind, str);
        $m!($arg, 2, $e.event.category, str);
        $m!($arg, 3, $e.event.kind_type, str);
        $m!($arg, 4, $e.event.action, str);
        $m!($arg, 5, $e.event.outcome, str);
        $m!($arg, 6, $e.event.dataset, str);
        $m!($arg, 7, $e.event.duration, i64);
        $m!($arg, 8, $e.observer.kind, str);
        $m!($arg, 9, $e.observer.vendor, str);
        $m!($arg, 10, $e.observer.product, str);
        $m!($arg, 11, $e.source.ip, ip);
        $m!($arg, 12, $e.source.port, u16);
        $m!($arg, 13, $e.source.bytes, u64);
        $m!($arg, 14, $e.source.packets, u64);
        $m!($arg, 15, $e.source.nat.ip, ip);
        $m!($arg, 16, $e.source.nat.port, u16);
        $m!($arg, 17, $e.destination.ip, ip);
        $m!($arg, 18, $e.destination.port, u16);
        $m!($arg, 19, $e.destination.bytes, u64);
        $m!($arg, 20, $e.destination.packets, u64);
        $m!($arg, 21, $e.destination.nat.ip, ip);
        $m!($arg, 22, $e.destination.nat.port, u16);
        $m!($arg, 23, $e.network.transport, str);
        $m!($arg, 24, $e.network.protocol, str);
        $m!($arg, 25, $e.network.community_id, str);
        $m!($arg, 26, $e.network.bytes, u64);
        $m!($arg, 27, $e.network.packets, u64);
        $m!($arg, 28, $e.network.iana_number, u8);
        $m!($arg, 29, $e.network.direction, str);
        $m!($arg, 30, $e.dns.question.name, str);
        $m!($arg, 31, $e.dns.question.kind, str);
        $m!($arg, 32, $e.dns.response_code, str);
        $m!($arg, 33, $e.url.full, str);
        $m!($arg, 34, $e.url.domain, str);
        $m!($arg, 35, $e.url.path, str);
        $m!($arg, 36, $e.http.request.method, str);
        $m!($arg, 37, $e.http.response.status_code, u16);
        $m!($arg, 38, $e.tls.server_name, str);
        $m!($arg, 39, $e.user.name, str);
        $m!($arg, 40, $e.host.name, str);
        $m!($arg, 41, $e.process.pid, u32);
        $m!($arg, 42, $e.process.name, str);
        $m!($arg, 43, $e.process.executable, str);
        $m!($arg, 44, $e.rule.name, str);
        $m!($arg, 45, $e.session.id, str);
    }};
}

/// Bits past the optional fields: the two lists, present when not empty.
const ANSWERS: u32 = 46;
const RELATED: u32 = 47;

/// A present optional field's value, written.
macro_rules! put_value {
    ($out:expr, $v:expr, str) => {
        put_str($out, $v)
    };
    ($out:expr, $v:expr, ts) => {
        $out.extend_from_slice(&$v.as_nanos().to_le_bytes())
    };
    ($out:expr, $v:expr, i64) => {
        put_uint($out, zigzag(*$v))
    };
    ($out:expr, $v:expr, ip) => {
        put_ip($out, $v)
    };
    ($out:expr, $v:expr, $int:ident) => {
        put_uint($out, u64::from(*$v))
    };
}

/// A present optional field's value, read.
macro_rules! get_value {
    ($r:expr, str) => {
        $r.str()?
    };
    ($r:expr, ts) => {
        Timestamp($r.i64_le()?)
    };
    ($r:expr, i64) => {
        unzigzag($r.uint()?)
    };
    ($r:expr, ip) => {
        $r.ip()?
    };
    ($r:expr, $int:ident) => {
        $r.int::<$int>()?
    };
}

/// Appends `e`'s encoding to `out`.
pub fn encode(e: &Event, out: &mut Vec<u8>) {
    // Every field named, so that a field added to the event fails to compile here until the form has it.
    #[rustfmt::skip]
    let Event {
        timestamp: _,
        event: EventMeta { id: _, ingested: _, kind: _, category: _, kind_type: _, action: _, outcome: _, dataset: _, duration: _ },
        observer: Observer { kind: _, name: _, vendor: _, product: _ },
        source: Endpoint { ip: _, port: _, bytes: _, packets: _, nat: Nat { ip: _, port: _ } },
        destination: Endpoint { ip: _, port: _, bytes: _, packets: _, nat: Nat { ip: _, port: _ } },
        network: Network { transport: _, protocol: _, community_id: _, bytes: _, packets: _, iana_number: _, direction: _ },
        dns: Dns { question: DnsQuestion { name: _, kind: _ }, answers: _, response_code: _ },
        url: Url { full: _, domain: _, path: _ },
        http: Http { request: HttpRequest { method: _ }, response: HttpResponse { status_code: _ } },
        tls: Tls { server_name: _ },
        user: Named { name: _ },
        host: Named { name: _ },
        process: Process { pid: _, name: _, executable: _ },
        rule: Named { name: _ },
        related: Related { ip: _ },
        session: Session { id: _ },
    } = e;
    let mut present = 0u64;
    macro_rules! bit {
        ($present:expr, $i:expr, $field:expr, $kind:ident) => {
            if $field.is_some() {
                $present |= 1 << $i;
            }
        };
    }
    optional_fields!(bit, e, present);
    if !e.dns.answers.is_empty() {
        present |= 1 << ANSWERS;
    }
    if !e.related.ip.is_empty() {
        present |= 1 << RELATED;
    }
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&e.timestamp.as_nanos().to_le_bytes());
    out.extend_from_slice(&present.to_le_bytes());
    put_str(out, &e.event.id);
    put_str(out, &e.observer.name);
    macro_rules! put {
        ($out:expr, $i:expr, $field:expr, $kind:ident) => {
            if let Some(v) = &$field {
                put_value!($out, v, $kind);
            }
        };
    }
    optional_fields!(put, e, out);
    if !e.dns.answers.is_empty() {
        put_uint(out, e.dns.answers.len() as u64);
        for DnsAnswer { data, kind, ttl } in &e.dns.answers {
            put_str(out, data);
            out.push(u8::from(kind.is_some()) | u8::from(ttl.is_some()) << 1);
            if let Some(k) = kind {
                put_str(out, k);
            }
            if let Some(t) = ttl {
                put_uint(out, u64::from(*t));
            }
        }
    }
    if !e.related.ip.is_empty() {
        put_uint(out, e.related.ip.len() as u64);
        for ip in &e.related.ip {
            put_ip(out, ip);
        }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

fn put_uint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_ip(out: &mut Vec<u8>, ip: &IpAddr) {
    match ip {
        IpAddr::V4(v) => {
            out.push(4);
            out.extend_from_slice(&v.octets());
        }
        IpAddr::V6(v) => {
            out.push(16);
            out.extend_from_slice(&v.octets());
        }
    }
}

/// Decodes bytes that [`encode`] wrote (they start with [`MAGIC`]).
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader {
        b: bytes
            .strip_prefix(&MAGIC[..])
            .ok_or_else(|| err("not an encoded event"))?,
    };
    let mut e = Event {
        timestamp: Timestamp(r.i64_le()?),
        ..Event::default()
    };
    let present = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
    if present >> (RELATED + 1) != 0 {
        return Err(err("unknown fields (written by a newer version?)"));
    }
    e.event.id = r.str()?;
    e.observer.name = r.str()?;
    macro_rules! get {
        ($r:expr, $i:expr, $field:expr, $kind:ident) => {
            if present & (1 << $i) != 0 {
                $field = Some(get_value!($r, $kind));
            }
        };
    }
    optional_fields!(get, e, r);
    if present & (1 << ANSWERS) != 0 {
        let n = r.count(2)?;
        e.dns.answers.reserve_exact(n);
        for _ in 0..n {
            let data = r.str()?;
            let flags = r.byte()?;
            let kind = if flags & 1 != 0 { Some(r.str()?) } else { None };
            let ttl = if flags & 2 != 0 { Some(r.int()?) } else { None };
            e.dns.answers.push(DnsAnswer { data, kind, ttl });
        }
    }
    if present & (1 << RELATED) != 0 {
        let n = r.count(5)?;
        e.related.ip.reserve_exact(n);
        for _ in 0..n {
            e.related.ip.push(r.ip()?);
        }
    }
    if !r.b.is_empty() {
        return Err(err("bytes left after the event"));
    }
    Ok(e)
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.b.len() < n {
            return Err(err("cut short"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i64_le(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn uint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                if shift == 63 && b > 1 {
                    break;
                }
                return Ok(v);
            }
        }
        Err(err("integer too long"))
    }

    fn int<T: TryFrom<u64>>(&mut self) -> Result<T, DecodeError> {
        T::try_from(self.uint()?).map_err(|_| err("integer out of range"))
    }

    /// A list's length, checked against the bytes left (each element takes at least `min_bytes`), so a
    /// damaged count cannot make the decoder reserve gigabytes.
    fn count(&mut self, min_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.uint()?;
        if n > (self.b.len() / min_bytes) as u64 {
            return Err(err("list longer than its bytes"));
        }
        Ok(n as usize)
    }

    fn str(&mut self) -> Result<Str, DecodeError> {
        let n = self.uint()?;
        let n = usize::try_from(n).map_err(|_| err("string too long"))?;
        let bytes = self.take(n)?;
        // Nearly every string is ASCII, which `is_ascii` checks a word at a time.
        let s = if bytes.is_ascii() {
            // SAFETY: ASCII is UTF-8.
            unsafe { std::str::from_utf8_unchecked(bytes) }
        } else {
            std::str::from_utf8(bytes).map_err(|_| err("string is not UTF-8"))?
        };
        Ok(Str::from(s))
    }

    fn ip(&mut self) -> Result<IpAddr, DecodeError> {
        match self.byte()? {
            4 => {
                let o: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
                Ok(IpAddr::V4(Ipv4Addr::from(o)))
            }
            16 => {
                let o: [u8; 16] = self.take(16)?.try_into().expect("16 bytes");
                Ok(IpAddr::V6(Ipv6Addr::from(o)))
            }
            _ => Err(err("bad address")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;
    use proptest::option::of;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = Str> {
        // ASCII, long enough to leave the inline form, and non-ASCII UTF-8.
        prop_oneof!["[a-z0-9.:-]{0,12}", "[ -~]{20,60}", "\\PC{0,20}",].prop_map(Str::from)
    }

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
    }

    fn ts() -> impl Strategy<Value = Timestamp> {
        any::<i64>().prop_map(Timestamp)
    }

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        (
            of(ip()),
            of(any::<u16>()),
            of(any::<u64>()),
            of(any::<u64>()),
            of(ip()),
            of(any::<u16>()),
        )
            .prop_map(|(ip, port, bytes, packets, nat_ip, nat_port)| Endpoint {
                ip,
                port,
                bytes,
                packets,
                nat: Nat {
                    ip: nat_ip,
                    port: nat_port,
                },
            })
    }

    fn meta() -> BoxedStrategy<EventMeta> {
        (
            text(),
            of(ts()),
            of(text()),
            of(text()),
            of(text()),
            of(text()),
            of(text()),
            of(text()),
            of(any::<i64>()),
        )
            .prop_map(|m| EventMeta {
                id: m.0,
                ingested: m.1,
                kind: m.2,
                category: m.3,
                kind_type: m.4,
                action: m.5,
                outcome: m.6,
                dataset: m.7,
                duration: m.8,
            })
            .boxed()
    }

    fn network() -> BoxedStrategy<Network> {
        (
            of(text()),
            of(text()),
            of(text()),
            of(any::<u64>()),
            of(any::<u64>()),
            of(any::<u8>()),
            of(text()),
        )
            .prop_map(|n| Network {
                transport: n.0,
                protocol: n.1,
                community_id: n.2,
                bytes: n.3,
                packets: n.4,
                iana_number: n.5,
                direction: n.6,
            })
            .boxed()
    }

    fn dns() -> BoxedStrategy<Dns> {
        let answer = (text(), of(text()), of(any::<u32>()))
            .prop_map(|(data, kind, ttl)| DnsAnswer { data, kind, ttl });
        (
            of(text()),
            of(text()),
            proptest::collection::vec(answer, 0..4),
            of(text()),
        )
            .prop_map(|d| Dns {
                question: DnsQuestion {
                    name: d.0,
                    kind: d.1,
                },
                answers: d.2,
                response_code: d.3,
            })
            .boxed()
    }

    /// Everything else: observer, web, names, process, related, session.
    fn rest() -> BoxedStrategy<Event> {
        let observer = (of(text()), text(), of(text()), of(text()))
            .prop_map(|o| Observer {
                kind: o.0,
                name: o.1,
                vendor: o.2,
                product: o.3,
            })
            .boxed();
        let web = (
            of(text()),
            of(text()),
            of(text()),
            of(text()),
            of(any::<u16>()),
            of(text()),
        )
            .boxed();
        let names = (of(text()), of(text()), of(text())).boxed();
        let process = (of(any::<u32>()), of(text()), of(text()))
            .prop_map(|p| Process {
                pid: p.0,
                name: p.1,
                executable: p.2,
            })
            .boxed();
        (
            observer,
            web,
            names,
            process,
            proptest::collection::vec(ip(), 0..5),
            of(text()),
        )
            .prop_map(|(observer, web, names, process, related, session)| Event {
                observer,
                url: Url {
                    full: web.0,
                    domain: web.1,
                    path: web.2,
                },
                http: Http {
                    request: HttpRequest { method: web.3 },
                    response: HttpResponse { status_code: web.4 },
                },
                tls: Tls { server_name: web.5 },
                user: Named { name: names.0 },
                host: Named { name: names.1 },
                rule: Named { name: names.2 },
                process,
                related: Related { ip: related },
                session: Session { id: session },
                ..Event::default()
            })
            .boxed()
    }

    fn event() -> BoxedStrategy<Event> {
        (
            ts(),
            meta(),
            endpoint().boxed(),
            endpoint().boxed(),
            network(),
            dns(),
            rest(),
        )
            .prop_map(
                |(timestamp, event, source, destination, network, dns, rest)| Event {
                    timestamp,
                    event,
                    source,
                    destination,
                    network,
                    dns,
                    ..rest
                },
            )
            .boxed()
    }

    proptest! {
        #[test]
        fn every_field_comes_back(e in event()) {
            let bytes = e.encode();
            prop_assert!(bytes.starts_with(&MAGIC));
            prop_assert_eq!(Event::decode(&bytes).unwrap(), e.clone());
            // Appending to a buffer that holds other events writes the same bytes.
            let mut batch = b"before".to_vec();
            e.encode_into(&mut batch);
            prop_assert_eq!(&batch[6..], &bytes[..]);
        }

        #[test]
        fn events_stored_as_postcard_still_decode(e in event()) {
            let legacy = postcard::to_stdvec(&e).unwrap();
            prop_assert_eq!(Event::decode(&legacy).unwrap(), e);
        }

        #[test]
        fn damaged_bytes_are_an_error_or_an_event_never_a_panic(
            e in event(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = e.encode();
            for (at, x) in flips {
                let i = MAGIC.len() + at.index(bytes.len() - MAGIC.len());
                bytes[i] ^= x;
            }
            let _ = Event::decode(&bytes);
        }
    }

    #[test]
    fn every_cut_is_an_error() {
        let mut e = Event::default();
        e.event.id = "an-id-longer-than-inline-strings-hold".into();
        e.source.ip = Some(IpAddr::from([10, 0, 0, 1]));
        e.dns.answers.push(DnsAnswer {
            data: "x".into(),
            kind: Some("A".into()),
            ttl: Some(60),
        });
        e.related.ip.push(IpAddr::from([0u8; 16]));
        let bytes = e.encode();
        for cut in 0..bytes.len() {
            assert!(Event::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Event::decode(&longer).is_err());
    }

    #[test]
    fn the_magic_never_begins_a_postcard_event() {
        // Postcard reads the timestamp first: ten bytes with the continuation bit are no varint.
        for tail in [
            &[][..],
            &[0u8; 64][..],
            &[0x7Fu8; 64][..],
            &Event::default().encode()[..],
        ] {
            let bytes = [&MAGIC[..], tail].concat();
            assert!(postcard::from_bytes::<Event>(&bytes).is_err());
        }
        // And the largest timestamps postcard writes stay clear of it.
        for t in [i64::MIN, i64::MAX, -1, 0] {
            let e = Event {
                timestamp: Timestamp(t),
                ..Event::default()
            };
            assert!(!postcard::to_stdvec(&e).unwrap().starts_with(&MAGIC));
        }
    }

    #[test]
    fn a_newer_versions_field_is_refused_not_misread() {
        let mut bytes = Event::default().encode();
        let bits = MAGIC.len() + 8;
        bytes[bits + 6] |= 1 << 0; // bit 48
        assert!(Event::decode(&bytes).unwrap_err().0.contains("newer"));
    }
}
