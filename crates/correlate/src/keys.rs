//! Link keys: what an event can be joined on. Each rule is one function here, documented in
//! docs/correlation.md. Keys are 64-bit hashes of a tagged value (collisions: ~n²/2⁶⁵, negligible at the
//! number of keys held at once), so correlation state holds integers, not strings.

use crate::Config;
use smallvec::SmallVec;
use std::net::IpAddr;
use std::time::Duration;
use storyline_model::community_id;
use storyline_model::Event;
use xxhash_rust::xxh3::Xxh3;

pub type Key = u64;

/// How an event can link to others. The lists are inline, and address bytes are held on the stack: a
/// worker's reader computes the links of every event it decodes, and their heap allocations (about five
/// per event) were most of that work.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Links {
    /// Joined with any event carrying the same key within `gap` of it: flow tuples (as seen, and each NAT
    /// view), sensor session ids.
    pub exact: SmallVec<[Key; 4]>,
    /// Valid for a while after the event: a DNS answer offers (client, address) and (client, name).
    pub offers: SmallVec<[(Key, Duration); 4]>,
    /// Looked up in offers: a connection demands (client, server address) and (client, server name).
    pub demands: SmallVec<[Key; 4]>,
}

fn key(tag: u8, parts: &[&[u8]]) -> Key {
    let mut h = Xxh3::new();
    h.update(&[tag]);
    for p in parts {
        h.update(&(p.len() as u32).to_le_bytes());
        h.update(p);
    }
    h.digest()
}

fn ip_bytes(ip: &IpAddr) -> SmallVec<[u8; 16]> {
    match ip {
        IpAddr::V4(v) => SmallVec::from_slice(&v.octets()),
        IpAddr::V6(v) => SmallVec::from_slice(&v.octets()),
    }
}

const FLOW: u8 = 1;
const SESSION: u8 = 2;
const DNS_ADDR: u8 = 3;
const NAME: u8 = 4;

/// Whether the event reports the session from the responder's side (flow exporters and firewalls often
/// log B→A, DNS servers log answers). The initiator is the side with the ephemeral port.
pub fn reversed(e: &Event) -> bool {
    matches!((e.source.port, e.destination.port), (Some(s), Some(d)) if s < d && s < 1024 && d >= 1024)
}

/// (initiator, responder) addresses as the event reports them.
pub fn endpoints(e: &Event) -> (Option<IpAddr>, Option<IpAddr>) {
    if reversed(e) {
        (e.destination.ip, e.source.ip)
    } else {
        (e.source.ip, e.destination.ip)
    }
}

fn protocol(e: &Event) -> Option<u8> {
    e.network.iana_number.or_else(|| {
        e.network
            .transport
            .as_deref()
            .and_then(community_id::protocol_number)
    })
}

fn flow_key(proto: u8, s: IpAddr, sp: Option<u16>, d: IpAddr, dp: Option<u16>) -> Key {
    let digest = community_id::digest(proto, s, d, sp, dp, 0);
    key(FLOW, &[&digest])
}

fn lower(name: &str) -> std::borrow::Cow<'_, str> {
    let name = name.trim_end_matches('.');
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        name.to_ascii_lowercase().into()
    } else {
        name.into()
    }
}

pub fn links(e: &Event, cfg: &Config) -> Links {
    let mut l = Links::default();
    flow_keys(e, &mut l);
    if let Some(id) = &e.session.id {
        // Scoped to the sensor: Zeek uids and Suricata flow ids are only unique per sensor.
        l.exact
            .push(key(SESSION, &[e.observer.name.as_bytes(), id.as_bytes()]));
    }
    let (client, server) = endpoints(e);
    let Some(client) = client else { return l };
    let client_b = ip_bytes(&client);
    if let Some(q) = e.dns.question.name.as_deref() {
        dns_offers(e, &client_b, q, cfg, &mut l);
        return l;
    }
    if let Some(server) = server {
        l.demands
            .push(key(DNS_ADDR, &[&client_b, &ip_bytes(&server)]));
    }
    for name in [e.tls.server_name.as_deref(), e.url.domain.as_deref()]
        .into_iter()
        .flatten()
    {
        l.demands
            .push(key(NAME, &[&client_b, lower(name).as_bytes()]));
    }
    l
}

/// The flow as seen, plus each translated view a NAT device reports: the outside view of source NAT
/// (NAT address replaces the source) and the inside view of destination NAT.
fn flow_keys(e: &Event, l: &mut Links) {
    let (Some(proto), Some(s), Some(d)) = (protocol(e), e.source.ip, e.destination.ip) else {
        return;
    };
    let (sp, dp) = (e.source.port, e.destination.port);
    l.exact.push(flow_key(proto, s, sp, d, dp));
    if let Some(ns) = e.source.nat.ip {
        l.exact
            .push(flow_key(proto, ns, e.source.nat.port.or(sp), d, dp));
    }
    if let Some(nd) = e.destination.nat.ip {
        l.exact
            .push(flow_key(proto, s, sp, nd, e.destination.nat.port.or(dp)));
    }
    l.exact.sort_unstable();
    l.exact.dedup();
}

/// A DNS answer offers its addresses and its question name to the client that asked, for the answer's TTL
/// bounded by `dns_link_window` (browsers reuse answers for minutes, but the connection a lookup was made
/// for follows within a second or two; a long window would glue later sessions to this one).
fn dns_offers(e: &Event, client: &[u8], question: &str, cfg: &Config, l: &mut Links) {
    let mut window = cfg.dns_link_window;
    let mut any_addr = false;
    for a in &e.dns.answers {
        if let Ok(ip) = a.data.parse::<IpAddr>() {
            let ttl = a
                .ttl
                .map(|t| Duration::from_secs(u64::from(t)))
                .unwrap_or(window);
            window = window.min(ttl.max(Duration::from_secs(1)));
            l.offers.push((
                key(DNS_ADDR, &[client, &ip_bytes(&ip)]),
                ttl.min(cfg.dns_link_window),
            ));
            any_addr = true;
        }
    }
    if any_addr {
        l.offers
            .push((key(NAME, &[client, lower(question).as_bytes()]), window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index keys are stored (checkpoints): their definition, xxh3-64 of the tag and each part's length
    /// and bytes, is pinned to a value.
    #[test]
    fn keys_hash_as_the_stored_definition() {
        assert_eq!(
            key(SESSION, &[b"zeek-core", b"CQewIBwXvcetZK1mQq"]),
            0xf85a_efc9_d48e_bf6b
        );
    }
    use storyline_model::DnsAnswer;

    fn conn(src: &str, sp: u16, dst: &str, dp: u16) -> Event {
        let mut e = Event::default();
        e.network.transport = Some("tcp".into());
        e.source.ip = Some(src.parse().unwrap());
        e.source.port = Some(sp);
        e.destination.ip = Some(dst.parse().unwrap());
        e.destination.port = Some(dp);
        e
    }

    #[test]
    fn nat_views_share_a_flow_key() {
        let cfg = Config::default();
        let mut inside = conn("10.0.0.5", 50000, "93.184.216.34", 443);
        inside.source.nat.ip = Some("198.51.100.7".parse().unwrap());
        inside.source.nat.port = Some(40001);
        let outside = conn("198.51.100.7", 40001, "93.184.216.34", 443);
        let reply = conn("93.184.216.34", 443, "198.51.100.7", 40001);
        let endpoint = conn("10.0.0.5", 50000, "93.184.216.34", 443);
        let (li, lo, lr, le) = (
            links(&inside, &cfg),
            links(&outside, &cfg),
            links(&reply, &cfg),
            links(&endpoint, &cfg),
        );
        assert!(
            li.exact.contains(&lo.exact[0]),
            "firewall's translated view meets the outside sensor"
        );
        assert_eq!(lo.exact, lr.exact, "direction does not matter");
        assert!(
            li.exact.contains(&le.exact[0]),
            "firewall's inside view meets the endpoint"
        );
    }

    #[test]
    fn dns_answers_offer_to_the_asking_client_and_connections_demand() {
        let cfg = Config::default();
        let mut q = conn("10.0.0.5", 53000, "10.0.0.53", 53);
        q.network.transport = Some("udp".into());
        q.dns.question.name = Some("WWW.Example.com.".into());
        q.dns.answers = vec![DnsAnswer {
            data: "93.184.216.34".into(),
            kind: Some("A".into()),
            ttl: Some(300),
        }];
        let lq = links(&q, &cfg);
        let mut c = conn("10.0.0.5", 50000, "93.184.216.34", 443);
        c.tls.server_name = Some("www.example.com".into());
        let lc = links(&c, &cfg);
        let offered: Vec<Key> = lq.offers.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            lc.demands.iter().filter(|k| offered.contains(k)).count(),
            2,
            "address and name both match"
        );
        assert!(lq.offers.iter().all(|(_, w)| *w <= cfg.dns_link_window));
        let other_client = links(&conn("10.0.0.6", 50000, "93.184.216.34", 443), &cfg);
        assert!(
            other_client.demands.iter().all(|k| !offered.contains(k)),
            "only the client that asked"
        );
    }

    #[test]
    fn session_ids_are_scoped_to_their_sensor() {
        let cfg = Config::default();
        let mut a = Event::default();
        a.observer.name = "zeek-1".into();
        a.session.id = Some("C1".into());
        let mut b = a.clone();
        b.observer.name = "zeek-2".into();
        assert_ne!(links(&a, &cfg).exact, links(&b, &cfg).exact);
    }
}
