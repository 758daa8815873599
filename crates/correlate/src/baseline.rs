//! The baseline Storyline is measured against: what a plain stream processor gives with session windows
//! keyed by the exact, directional 5-tuple (no Community ID, no NAT, no DNS, no skew handling).

use std::collections::HashMap;
use std::net::IpAddr;
use storyline_model::{Event, Timestamp};

type Tuple = (
    Option<IpAddr>,
    Option<u16>,
    Option<IpAddr>,
    Option<u16>,
    Option<String>,
);

/// Groups events into session windows per exact 5-tuple with the given gap. Returns, for each input
/// event (by position), the index of its group. Events without a tuple are groups of their own.
pub fn five_tuple_sessions(events: &[Event], gap: std::time::Duration) -> Vec<usize> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].timestamp);
    let mut open: HashMap<Tuple, (usize, Timestamp)> = HashMap::new();
    let mut group = vec![0; events.len()];
    let mut next = 0;
    for i in order {
        let e = &events[i];
        let tuple: Tuple = (
            e.source.ip,
            e.source.port,
            e.destination.ip,
            e.destination.port,
            e.network.transport.as_ref().map(|t| t.to_string()),
        );
        if e.source.ip.is_none() || e.destination.ip.is_none() {
            group[i] = next;
            next += 1;
            continue;
        }
        match open.get_mut(&tuple) {
            Some((g, last)) if e.timestamp <= last.saturating_add(gap) => {
                group[i] = *g;
                *last = (*last).max(e.timestamp);
            }
            _ => {
                group[i] = next;
                open.insert(tuple, (next, e.timestamp));
                next += 1;
            }
        }
    }
    group
}
