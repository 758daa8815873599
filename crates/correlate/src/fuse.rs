//! How events become a story's fused record: who talked to whom (the initiator resolved across sensors),
//! how much, the names, the people and processes, the verdicts — and, per sensor, what it said.
//!
//! Every choice is order-independent: the endpoints are taken from the most authoritative event, ties
//! broken by the smaller event key, never by arrival order; other single values take the smallest value
//! reported; counts take the maximum; lists are sets, published sorted ([`published`]).

use crate::keys::reversed;
use serde::{Deserialize, Serialize};
use storyline_model::{
    push_unique, Event, EventKey, Fused, FusedEndpoint, SensorView, Str, Timestamp,
};

/// At most this many distinct values per name list: a story is a summary, not a dump.
const MAX_NAMES: usize = 16;
/// At most this many sensors described in provenance.
const MAX_VIEWS: usize = 32;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FusedAcc {
    pub fused: Fused,
    /// Rank of the event the endpoints were taken from.
    endpoint_rank: Option<(u8, std::cmp::Reverse<EventKey>)>,
    pub views: Vec<SensorView>,
}

pub(crate) fn add(list: &mut storyline_model::Names, v: Option<&Str>) {
    if let Some(v) = v {
        if list.len() < MAX_NAMES && !v.is_empty() {
            push_unique(list, v.clone());
        }
    }
}

/// The smaller of two reported values: which sensor's value a story shows must not depend on which
/// report arrived first.
fn min_opt<T: Ord + Clone>(a: Option<T>, b: Option<&T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) if *b < a => Some(b.clone()),
        (a, b) => a.or_else(|| b.cloned()),
    }
}

/// The smaller of two translated endpoints, as one (address, port) value.
fn min_nat(a: &mut storyline_model::FusedNat, ip: Option<std::net::IpAddr>, port: Option<u16>) {
    if ip.is_some() && (a.ip.is_none() || (ip, port) < (a.ip, a.port)) {
        a.ip = ip;
        a.port = port;
    }
}

/// A story's fused record as published: its lists sorted, so equal stories print equally whatever order
/// their values arrived in.
pub(crate) fn published(mut f: Fused) -> Fused {
    for list in [
        &mut f.dns.question.names,
        &mut f.url.domains,
        &mut f.tls.server_names,
        &mut f.user.names,
        &mut f.host.names,
        &mut f.process.names,
        &mut f.rule.names,
        &mut f.event.actions,
        &mut f.event.categories,
    ] {
        list.sort_unstable();
    }
    f
}

pub(crate) fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Who knows best who initiated a session and from which inside address: the endpoint itself, then a
/// firewall that saw the translation, then inside sensors, then outside flow logs.
fn authority(e: &Event) -> u8 {
    if e.dns.question.name.is_some() || e.network.protocol.as_deref() == Some("dns") {
        // A lookup's own flow (client → resolver) is part of the story, but not the session it tells.
        return 0;
    }
    match e.observer.kind.as_deref() {
        Some("host") => 4,
        Some("firewall") if e.source.nat.ip.is_some() || e.destination.nat.ip.is_some() => 3,
        Some("firewall") => 2,
        Some("sensor") if e.observer.product.as_deref() == Some("Zeek") => 2,
        _ => 1,
    }
}

impl FusedAcc {
    pub fn add_event(&mut self, e: &Event, key: EventKey, t: Timestamp) {
        let rev = reversed(e);
        let (src, dst) = if rev {
            (&e.destination, &e.source)
        } else {
            (&e.source, &e.destination)
        };
        let f = &mut self.fused;
        let rank = (authority(e), std::cmp::Reverse(key));
        if e.source.ip.is_some() && self.endpoint_rank.is_none_or(|r| rank > r) {
            self.endpoint_rank = Some(rank);
            f.source.ip = src.ip;
            f.source.port = src.port;
            f.destination.ip = dst.ip;
            f.destination.port = dst.port;
        }
        // A reply logged by a NAT device names the inside client as the translated destination.
        let (snat, dnat) = if rev {
            (&e.destination.nat, &e.source.nat)
        } else {
            (&e.source.nat, &e.destination.nat)
        };
        min_nat(&mut f.source.nat, snat.ip, snat.port);
        min_nat(&mut f.destination.nat, dnat.ip, dnat.port);
        f.source.bytes = max_opt(f.source.bytes, src.bytes);
        f.source.packets = max_opt(f.source.packets, src.packets);
        f.destination.bytes = max_opt(f.destination.bytes, dst.bytes);
        f.destination.packets = max_opt(f.destination.packets, dst.packets);
        let n = &mut f.network;
        n.transport = min_opt(n.transport.take(), e.network.transport.as_ref());
        if e.dns.question.name.is_none() {
            // The session's protocol, not the lookup's.
            n.protocol = min_opt(n.protocol.take(), e.network.protocol.as_ref());
            n.community_id = min_opt(n.community_id.take(), e.network.community_id.as_ref());
        }
        n.bytes = max_opt(n.bytes, e.network.bytes);
        n.packets = max_opt(n.packets, e.network.packets);
        add(&mut f.dns.question.names, e.dns.question.name.as_ref());
        add(&mut f.url.domains, e.url.domain.as_ref());
        add(&mut f.tls.server_names, e.tls.server_name.as_ref());
        add(&mut f.user.names, e.user.name.as_ref());
        add(&mut f.host.names, e.host.name.as_ref());
        add(&mut f.process.names, e.process.name.as_ref());
        add(&mut f.rule.names, e.rule.name.as_ref());
        add(&mut f.event.actions, e.event.action.as_ref());
        add(&mut f.event.categories, e.event.category.as_ref());
        self.add_view(e, src, dst, t);
    }

    fn add_view(
        &mut self,
        e: &Event,
        src: &storyline_model::Endpoint,
        dst: &storyline_model::Endpoint,
        t: Timestamp,
    ) {
        let idx = match self.views.iter().position(|v| v.sensor == e.observer.name) {
            Some(i) => i,
            None if self.views.len() < MAX_VIEWS => {
                self.views.push(SensorView {
                    sensor: e.observer.name.clone(),
                    first_seen: t,
                    last_seen: t,
                    ..Default::default()
                });
                self.views.len() - 1
            }
            None => return,
        };
        let v = &mut self.views[idx];
        v.events += 1;
        v.first_seen = v.first_seen.min(t);
        v.last_seen = v.last_seen.max(t);
        v.source_bytes = max_opt(v.source_bytes, src.bytes);
        v.destination_bytes = max_opt(v.destination_bytes, dst.bytes);
        add(&mut v.actions, e.event.action.as_ref());
    }

    pub fn merge(&mut self, other: &FusedAcc) {
        if other.endpoint_rank > self.endpoint_rank {
            self.endpoint_rank = other.endpoint_rank;
            let (s, d) = (&other.fused.source, &other.fused.destination);
            self.fused.source.ip = s.ip;
            self.fused.source.port = s.port;
            self.fused.destination.ip = d.ip;
            self.fused.destination.port = d.port;
        }
        let into = &mut self.fused;
        let from = &other.fused;
        for (a, b) in [
            (&mut into.source, &from.source),
            (&mut into.destination, &from.destination),
        ] {
            merge_counts(a, b);
        }
        merge_network_and_names(into, from);
        for ov in &other.views {
            match self.views.iter().position(|v| v.sensor == ov.sensor) {
                Some(i) => {
                    let v = &mut self.views[i];
                    v.events += ov.events;
                    v.first_seen = v.first_seen.min(ov.first_seen);
                    v.last_seen = v.last_seen.max(ov.last_seen);
                    v.source_bytes = max_opt(v.source_bytes, ov.source_bytes);
                    v.destination_bytes = max_opt(v.destination_bytes, ov.destination_bytes);
                    for a in &ov.actions {
                        add(&mut v.actions, Some(a));
                    }
                }
                None if self.views.len() < MAX_VIEWS => self.views.push(ov.clone()),
                None => {}
            }
        }
    }

    /// Provenance sorted by sensor name (and each sensor's actions sorted), so equal stories print
    /// equally.
    pub fn sorted_views(&self) -> Vec<SensorView> {
        let mut v = self.views.clone();
        v.sort_by(|a, b| a.sensor.cmp(&b.sensor));
        for view in &mut v {
            view.actions.sort_unstable();
        }
        v
    }
}

/// Folds `from`'s network fields and name lists into `into` (the endpoints are each engine's own call).
pub(crate) fn merge_network_and_names(into: &mut Fused, from: &Fused) {
    let n = &mut into.network;
    n.transport = min_opt(n.transport.take(), from.network.transport.as_ref());
    n.protocol = min_opt(n.protocol.take(), from.network.protocol.as_ref());
    n.community_id = min_opt(n.community_id.take(), from.network.community_id.as_ref());
    n.bytes = max_opt(n.bytes, from.network.bytes);
    n.packets = max_opt(n.packets, from.network.packets);
    let lists = [
        (&mut into.dns.question.names, &from.dns.question.names),
        (&mut into.url.domains, &from.url.domains),
        (&mut into.tls.server_names, &from.tls.server_names),
        (&mut into.user.names, &from.user.names),
        (&mut into.host.names, &from.host.names),
        (&mut into.process.names, &from.process.names),
        (&mut into.rule.names, &from.rule.names),
        (&mut into.event.actions, &from.event.actions),
        (&mut into.event.categories, &from.event.categories),
    ];
    for (a, b) in lists {
        for v in b {
            add(a, Some(v));
        }
    }
}

fn merge_counts(a: &mut FusedEndpoint, b: &FusedEndpoint) {
    a.bytes = max_opt(a.bytes, b.bytes);
    a.packets = max_opt(a.packets, b.packets);
    min_nat(&mut a.nat, b.nat.ip, b.nat.port);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(kind: &str, src: &str, sp: u16, dst: &str, dp: u16) -> Event {
        let mut e = Event::default();
        e.observer.kind = Some(kind.into());
        e.source.ip = Some(src.parse().unwrap());
        e.source.port = Some(sp);
        e.destination.ip = Some(dst.parse().unwrap());
        e.destination.port = Some(dp);
        e
    }

    #[test]
    fn the_session_not_its_dns_lookup_names_the_endpoints() {
        let mut lookup = flow("sensor", "10.0.0.5", 53000, "10.0.0.53", 53);
        lookup.network.protocol = Some("dns".into());
        lookup.dns.question.name = Some("files.corp".into());
        let conn = flow("firewall", "10.0.0.5", 50000, "10.20.0.10", 445);
        for order in [[&lookup, &conn], [&conn, &lookup]] {
            let mut acc = FusedAcc::default();
            for (i, e) in order.iter().enumerate() {
                acc.add_event(e, EventKey(i as u128), Timestamp(0));
            }
            assert_eq!(acc.fused.destination.port, Some(445), "whatever the order");
            assert_eq!(acc.fused.dns.question.names.as_slice(), ["files.corp"]);
        }
    }
}
