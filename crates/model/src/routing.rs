//! Which shard an event goes to.
//!
//! The routing key is the flow's Community ID when the event describes a flow: it is direction-agnostic,
//! so the A→B and B→A reports of one session land on the same shard and meet in one worker, and it
//! spreads load evenly (a routing key by server address would make a popular server a hot shard).
//! Events without a tuple fall back to the sensor's session id, then the host name, then the event id.
//! Links that cross shards (NAT views, DNS → connection) are the correlation engine's concern: see
//! docs/design.md.

use crate::Event;
use xxhash_rust::xxh3::xxh3_64;

pub type Shard = u16;

pub fn routing_key(e: &Event) -> &str {
    if let Some(c) = &e.network.community_id {
        return c;
    }
    if let Some(s) = &e.session.id {
        return s;
    }
    if let Some(h) = &e.host.name {
        return h;
    }
    &e.event.id
}

pub fn shard_for(e: &Event, shards: u16) -> Shard {
    shard_of_key(routing_key(e), shards)
}

pub fn shard_of_key(key: &str, shards: u16) -> Shard {
    (xxh3_64(key.as_bytes()) % u64::from(shards.max(1))) as Shard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_of_a_flow_share_a_shard() {
        let mut a = Event::default();
        a.source.ip = Some("10.1.1.1".parse().unwrap());
        a.source.port = Some(40000);
        a.destination.ip = Some("192.0.2.7".parse().unwrap());
        a.destination.port = Some(53);
        a.network.transport = Some("udp".into());
        a.event.id = "one".into();
        let mut b = a.clone();
        std::mem::swap(&mut b.source, &mut b.destination);
        b.event.id = "two".into();
        a.finish();
        b.finish();
        for shards in [1, 7, 64, 1024] {
            assert_eq!(shard_for(&a, shards), shard_for(&b, shards));
        }
    }

    #[test]
    fn shards_spread() {
        let used: std::collections::HashSet<_> = (0..1000)
            .map(|i| shard_of_key(&format!("k{i}"), 16))
            .collect();
        assert_eq!(used.len(), 16);
    }
}
