//! Every generated record must parse with Storyline's own parser and get exactly the truth event id;
//! otherwise the truth file could not be joined to stories.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use storyline_generate::{GenConfig, Generator};
use storyline_parse::{parse_envelope, Limits};

#[test]
fn every_line_parses_to_the_truth_id_and_time() {
    let cfg = GenConfig {
        events: 20_000,
        large: 0.002,
        ..GenConfig::default()
    };
    let limits = Limits::default();
    let mut formats = BTreeSet::new();
    // Community IDs of each story's connection records (DNS lookups excluded): the inside view and,
    // for NATed sessions, the outside view.
    let mut cids: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut nated = BTreeSet::new();
    for g in Generator::new(&cfg) {
        let p = parse_envelope(g.envelope.as_bytes(), &limits)
            .unwrap_or_else(|e| panic!("{e}: {}", &g.envelope[..g.envelope.len().min(600)]));
        let e = &p.event;
        assert_eq!(e.event.id.as_str(), g.event_id, "{}", g.envelope);
        assert_eq!(p.format.as_str(), g.format);
        assert_eq!(p.sensor.as_str(), g.sensor);
        // Zeek's float seconds may round to the neighbouring microsecond.
        let dt = e.timestamp.nanos_since(g.event_time).abs();
        assert!(
            dt <= 1_000,
            "time {} vs {} in {}",
            e.timestamp,
            g.event_time,
            g.envelope
        );
        assert!(e.source.ip.is_some() && e.destination.ip.is_some());
        assert!(e.source.port.is_some() && e.destination.port.is_some());
        let cid = e
            .network
            .community_id
            .clone()
            .expect("tuple gives a community id");
        formats.insert(g.format);

        let nat_pool =
            |ip: Option<IpAddr>| ip.is_some_and(|ip| ip.to_string().starts_with("203.0.113."));
        if nat_pool(e.source.nat.ip) || nat_pool(e.destination.ip) || nat_pool(e.source.ip) {
            nated.insert(g.story.clone());
        }
        if e.destination.port != Some(53) {
            cids.entry(g.story.clone())
                .or_default()
                .insert(cid.to_string());
        }
    }
    assert_eq!(formats.len(), 5);
    let mut joined = 0;
    for (story, ids) in &cids {
        let views = if nated.contains(story) { 2 } else { 1 };
        assert!(
            ids.len() <= views,
            "story {story} has {} tuples: {ids:?}",
            ids.len()
        );
        joined += 1;
    }
    assert!(joined > 1000);
}
