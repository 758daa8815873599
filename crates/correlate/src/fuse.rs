//! How one event's fields enter its story's fused record.

use storyline_model::{push_unique, Event, Fused, Str};

/// At most this many distinct values per name list: a story is a summary, not a dump.
const MAX_NAMES: usize = 16;

fn add(list: &mut Vec<Str>, v: Option<&Str>) {
    if let Some(v) = v {
        if list.len() < MAX_NAMES && !v.is_empty() {
            push_unique(list, v.clone());
        }
    }
}

/// Whether the event reports the session from the responder's side. Flow exporters and firewalls often
/// report B→A; the initiator is usually the side with the ephemeral (higher) port.
fn reversed(e: &Event) -> bool {
    matches!((e.source.port, e.destination.port), (Some(s), Some(d)) if s < d && s < 1024 && d >= 1024)
}

pub fn fuse(f: &mut Fused, e: &Event) {
    let (src, dst) = if reversed(e) {
        (&e.destination, &e.source)
    } else {
        (&e.source, &e.destination)
    };
    for (into, from) in [(&mut f.source, src), (&mut f.destination, dst)] {
        into.ip = into.ip.or(from.ip);
        into.port = into.port.or(from.port);
        // Sensors disagree on counts (sampling, partial views); the largest is the most complete view.
        into.bytes = max_opt(into.bytes, from.bytes);
        into.packets = max_opt(into.packets, from.packets);
        into.nat.ip = into.nat.ip.or(from.nat.ip);
        into.nat.port = into.nat.port.or(from.nat.port);
    }
    let n = &mut f.network;
    n.transport = n.transport.take().or_else(|| e.network.transport.clone());
    n.protocol = n.protocol.take().or_else(|| e.network.protocol.clone());
    n.community_id = n
        .community_id
        .take()
        .or_else(|| e.network.community_id.clone());
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
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Folds one story's fused record into another's (when a late event bridges two stories).
pub fn merge(into: &mut Fused, from: &Fused) {
    for (a, b) in [
        (&mut into.source, &from.source),
        (&mut into.destination, &from.destination),
    ] {
        a.ip = a.ip.or(b.ip);
        a.port = a.port.or(b.port);
        a.bytes = max_opt(a.bytes, b.bytes);
        a.packets = max_opt(a.packets, b.packets);
        a.nat.ip = a.nat.ip.or(b.nat.ip);
        a.nat.port = a.nat.port.or(b.nat.port);
    }
    let n = &mut into.network;
    n.transport = n
        .transport
        .take()
        .or_else(|| from.network.transport.clone());
    n.protocol = n.protocol.take().or_else(|| from.network.protocol.clone());
    n.community_id = n
        .community_id
        .take()
        .or_else(|| from.network.community_id.clone());
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
