//! The story's NDJSON line written straight into a byte buffer.
//!
//! `Story::to_json` builds a `serde_json::Value` and prunes it; on `storyline replay` that tree (a map node
//! and a string per field, per story version) was a seventh of the worker's time. This writer emits the same
//! bytes — keys in the `Value` map's sorted order, absent and empty values left out — without the tree. It
//! destructures every struct without `..`, so a new field is a compile error here rather than a field that
//! silently goes missing from published stories; a property test checks it byte for byte against
//! `to_json`.

use crate::story::{
    Fused, FusedDns, FusedEndpoint, FusedEvent, FusedNames, FusedNat, FusedNetwork, FusedTls,
    FusedUrl, SensorView, Story,
};
use crate::{Str, Timestamp};
use std::io::Write;
use std::net::IpAddr;

impl Story {
    /// Appends this version's NDJSON line (without the newline) to `out`: the bytes of
    /// `serde_json::to_vec(&self.to_json())`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let Story {
            story_id,
            version,
            tenant,
            first_seen,
            last_seen,
            event_count,
            event_ids,
            sensors,
            merged_into,
            provenance,
            cuts,
            related_story_ids,
            fused,
        } = self;
        let Fused {
            source,
            destination,
            network,
            dns,
            url,
            tls,
            user,
            host,
            process,
            rule,
            event,
        } = &**fused;
        let mut o = Obj::open(out);
        o.strs("cuts", cuts);
        o.nested("destination", |o| endpoint(o, destination));
        o.nested("dns", |o| dns_fields(o, dns));
        o.nested("event", |o| event_fields(o, event));
        o.num("event_count", *event_count as u64);
        o.strs("event_ids", event_ids);
        o.time("first_seen", *first_seen);
        o.nested("host", |o| names(o, host));
        o.time("last_seen", *last_seen);
        if let Some(id) = merged_into {
            o.key("merged_into");
            id.write_json(o.out);
        }
        o.nested("network", |o| network_fields(o, network));
        o.nested("process", |o| names(o, process));
        if !provenance.is_empty() {
            o.key("provenance");
            o.out.push(b'[');
            for (i, v) in provenance.iter().enumerate() {
                if i > 0 {
                    o.out.push(b',');
                }
                let mut p = Obj::open(o.out);
                sensor_view(&mut p, v);
                p.close();
            }
            o.out.push(b']');
        }
        o.strs("related_story_ids", related_story_ids);
        o.nested("rule", |o| names(o, rule));
        o.strs("sensors", sensors);
        o.nested("source", |o| endpoint(o, source));
        o.key("story_id");
        story_id.write_json(o.out);
        o.str("tenant", tenant);
        o.nested("tls", |o| tls_fields(o, tls));
        o.nested("url", |o| url_fields(o, url));
        o.nested("user", |o| names(o, user));
        o.num("version", *version as u64);
        o.close();
    }
}

fn endpoint(o: &mut Obj, e: &FusedEndpoint) {
    let FusedEndpoint {
        ip,
        port,
        bytes,
        packets,
        nat,
    } = e;
    o.opt_num("bytes", *bytes);
    o.opt_ip("ip", ip);
    o.nested("nat", |o| {
        let FusedNat { ip, port } = nat;
        o.opt_ip("ip", ip);
        o.opt_num("port", port.map(u64::from));
    });
    o.opt_num("packets", *packets);
    o.opt_num("port", port.map(u64::from));
}

fn network_fields(o: &mut Obj, n: &FusedNetwork) {
    let FusedNetwork {
        transport,
        protocol,
        community_id,
        bytes,
        packets,
    } = n;
    o.opt_num("bytes", *bytes);
    o.opt_str("community_id", community_id);
    o.opt_num("packets", *packets);
    o.opt_str("protocol", protocol);
    o.opt_str("transport", transport);
}

fn dns_fields(o: &mut Obj, d: &FusedDns) {
    let FusedDns { question } = d;
    o.nested("question", |o| o.strs("names", &question.names));
}

fn url_fields(o: &mut Obj, u: &FusedUrl) {
    let FusedUrl { domains } = u;
    o.strs("domains", domains);
}

fn tls_fields(o: &mut Obj, t: &FusedTls) {
    let FusedTls { server_names } = t;
    o.strs("server_names", server_names);
}

fn names(o: &mut Obj, n: &FusedNames) {
    let FusedNames { names } = n;
    o.strs("names", names);
}

fn event_fields(o: &mut Obj, e: &FusedEvent) {
    let FusedEvent {
        actions,
        categories,
    } = e;
    o.strs("actions", actions);
    o.strs("categories", categories);
}

fn sensor_view(o: &mut Obj, v: &SensorView) {
    let SensorView {
        sensor,
        events,
        first_seen,
        last_seen,
        source_bytes,
        destination_bytes,
        actions,
        clock_offset_ms,
    } = v;
    o.strs("actions", actions);
    if let Some(ms) = clock_offset_ms {
        o.key("clock_offset_ms");
        integer(o.out, *ms);
    }
    o.opt_num("destination_bytes", *destination_bytes);
    o.num("events", *events as u64);
    o.time("first_seen", *first_seen);
    o.time("last_seen", *last_seen);
    o.str("sensor", sensor);
    o.opt_num("source_bytes", *source_bytes);
}

/// A JSON object being written: tracks whether a member was written, so an object whose members were all
/// empty can be taken back whole (`to_json` prunes empty objects too).
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    members: usize,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        out.push(b'{');
        Obj {
            out,
            start,
            members: 0,
        }
    }

    /// Closes the object; returns false (and removes it) when it has no members.
    fn close(self) -> bool {
        if self.members == 0 {
            self.out.truncate(self.start);
            return false;
        }
        self.out.push(b'}');
        true
    }

    fn key(&mut self, k: &str) {
        if self.members > 0 {
            self.out.push(b',');
        }
        self.members += 1;
        self.out.push(b'"');
        // Keys are this module's own ASCII literals: nothing to escape.
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A member that is itself an object, left out when it would be empty.
    fn nested(&mut self, k: &str, fill: impl FnOnce(&mut Obj)) {
        let mark = self.out.len();
        let members = self.members;
        self.key(k);
        let mut inner = Obj::open(self.out);
        fill(&mut inner);
        if !inner.close() {
            self.out.truncate(mark);
            self.members = members;
        }
    }

    fn num(&mut self, k: &str, v: u64) {
        self.key(k);
        integer(self.out, v);
    }

    fn opt_num(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.num(k, v);
        }
    }

    fn str(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            self.key(k);
            string(self.out, v);
        }
    }

    fn opt_str(&mut self, k: &str, v: &Option<Str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }

    fn opt_ip(&mut self, k: &str, v: &Option<IpAddr>) {
        match v {
            // Written octet by octet: most addresses are IPv4, and `Display` formats each octet through
            // the formatting machinery.
            Some(IpAddr::V4(ip)) => {
                self.key(k);
                self.out.push(b'"');
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(b'.');
                    }
                    integer(self.out, octet);
                }
                self.out.push(b'"');
            }
            Some(ip) => self.display(k, ip),
            None => {}
        }
    }

    fn display(&mut self, k: &str, v: &impl std::fmt::Display) {
        self.key(k);
        // Addresses and hex ids hold nothing that JSON escapes.
        write!(self.out, "\"{v}\"").expect("writing to a Vec cannot fail");
    }

    fn time(&mut self, k: &str, t: Timestamp) {
        self.key(k);
        // RFC 3339 text holds nothing that JSON escapes.
        self.out.push(b'"');
        t.write_rfc3339(self.out);
        self.out.push(b'"');
    }

    /// An array of strings with its empty strings left out, and left out itself when nothing remains.
    fn strs(&mut self, k: &str, v: &[Str]) {
        if v.iter().all(|s| s.is_empty()) {
            return;
        }
        self.key(k);
        self.out.push(b'[');
        let mut first = true;
        for s in v.iter().filter(|s| !s.is_empty()) {
            if !first {
                self.out.push(b',');
            }
            first = false;
            string(self.out, s);
        }
        self.out.push(b']');
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    // JSON escapes only quotes, backslashes and control characters: a string without any (nearly all) is
    // copied as it is, found eight bytes at a time (serde_json looks up every byte in a table).
    if crate::json_text::special(s.as_bytes()) == s.len() {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing a str to a Vec cannot fail");
    }
}

/// An integer's decimal digits, without the formatting machinery (several per story version).
fn integer(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoryId;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = Str> {
        prop_oneof![Just(String::new()), "[a-z.]{1,8}", ".{0,6}"].prop_map(Str::from)
    }

    proptest! {
        #[test]
        fn strings_are_written_as_serde_json_writes_them(
            s in prop_oneof!["[ -~]{0,40}", "\\PC{0,20}", ".{0,20}", "[\"\\\\\\x00-\\x1f\\x7f a]{0,12}"],
        ) {
            let mut out = Vec::new();
            string(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
        }
    }

    fn texts() -> impl Strategy<Value = Vec<Str>> {
        prop::collection::vec(text(), 0..3)
    }

    /// Zero, one (inline) or two (spilled) names.
    fn names() -> impl Strategy<Value = crate::Names> {
        texts().prop_map(crate::Names::from_vec)
    }

    fn ip() -> impl Strategy<Value = Option<IpAddr>> {
        prop::option::of(prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ])
    }

    fn time() -> impl Strategy<Value = Timestamp> {
        prop_oneof![
            Just(0i64),
            any::<i64>(),
            1_700_000_000_000_000_000i64..1_900_000_000_000_000_000
        ]
        .prop_map(Timestamp)
    }

    fn endpoint() -> impl Strategy<Value = FusedEndpoint> {
        (
            ip(),
            any::<Option<u16>>(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            ip(),
            any::<Option<u16>>(),
        )
            .prop_map(
                |(ip, port, bytes, packets, nat_ip, nat_port)| FusedEndpoint {
                    ip,
                    port,
                    bytes,
                    packets,
                    nat: FusedNat {
                        ip: nat_ip,
                        port: nat_port,
                    },
                },
            )
    }

    fn view() -> impl Strategy<Value = SensorView> {
        (
            text(),
            any::<u32>(),
            time(),
            time(),
            any::<Option<u64>>(),
            any::<Option<u64>>(),
            names(),
            any::<Option<i64>>(),
        )
            .prop_map(
                |(sensor, events, first_seen, last_seen, sb, db, actions, off)| SensorView {
                    sensor,
                    events,
                    first_seen,
                    last_seen,
                    source_bytes: sb,
                    destination_bytes: db,
                    actions,
                    clock_offset_ms: off,
                },
            )
    }

    fn fused() -> impl Strategy<Value = Fused> {
        (
            endpoint(),
            endpoint(),
            (
                prop::option::of(text()),
                prop::option::of(text()),
                prop::option::of(text()),
            ),
            (any::<Option<u64>>(), any::<Option<u64>>()),
            (names(), names(), names()),
            (names(), names(), names(), names()),
            (names(), names()),
        )
            .prop_map(
                |(source, destination, (t, p, c), (b, pk), (q, d, s), (u, h, pr, r), (a, cat))| {
                    Fused {
                        source,
                        destination,
                        network: FusedNetwork {
                            transport: t,
                            protocol: p,
                            community_id: c,
                            bytes: b,
                            packets: pk,
                        },
                        dns: FusedDns {
                            question: crate::story::FusedDnsQuestion { names: q },
                        },
                        url: FusedUrl { domains: d },
                        tls: FusedTls { server_names: s },
                        user: FusedNames { names: u },
                        host: FusedNames { names: h },
                        process: FusedNames { names: pr },
                        rule: FusedNames { names: r },
                        event: FusedEvent {
                            actions: a,
                            categories: cat,
                        },
                    }
                },
            )
    }

    fn story() -> impl Strategy<Value = Story> {
        (
            (
                any::<u128>(),
                any::<u32>(),
                text(),
                time(),
                time(),
                any::<u32>(),
            ),
            (texts(), texts(), prop::option::of(any::<u128>())),
            (prop::collection::vec(view(), 0..3), texts(), texts()),
            fused(),
        )
            .prop_map(
                |(
                    (id, version, tenant, first_seen, last_seen, event_count),
                    (event_ids, sensors, merged),
                    (provenance, cuts, related),
                    fused,
                )| Story {
                    story_id: StoryId(id),
                    version,
                    tenant,
                    first_seen,
                    last_seen,
                    event_count,
                    event_ids,
                    sensors,
                    merged_into: merged.map(StoryId),
                    provenance,
                    cuts,
                    related_story_ids: related,
                    fused: Box::new(fused),
                },
            )
    }

    proptest! {
        #[test]
        fn writes_the_bytes_of_to_json(s in story()) {
            let mut direct = Vec::new();
            s.write_json(&mut direct);
            let via_value = serde_json::to_vec(&s.to_json()).unwrap();
            prop_assert_eq!(String::from_utf8(direct).unwrap(), String::from_utf8(via_value).unwrap());
        }
    }

    #[test]
    fn an_empty_story_keeps_its_always_present_fields() {
        let mut out = Vec::new();
        Story::default().write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["version"], 0);
        assert_eq!(v["story_id"], "00000000000000000000000000000000");
        assert!(v.get("source").is_none(), "{v}");
        assert!(
            v.get("tenant").is_none(),
            "an empty tenant is pruned as to_json does: {v}"
        );
    }
}
