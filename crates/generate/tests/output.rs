//! Properties of the generated output, measured on the output itself (as a consumer would see it).

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use storyline_generate::{write_dir, GenConfig, Generated, Generator, FORMATS};
use storyline_model::ids::content_event_id;

fn cfg(events: u64) -> GenConfig {
    GenConfig {
        events,
        ..GenConfig::default()
    }
}

fn run(c: &GenConfig) -> Vec<Generated> {
    Generator::new(c).collect()
}

/// The exact bytes of the record inside an envelope line.
fn raw_record(envelope: &str) -> &str {
    let at = envelope.find("\"record\":").expect("record key") + "\"record\":".len();
    &envelope[at..envelope.len() - 1]
}

fn record(g: &Generated) -> Value {
    let v: Value = serde_json::from_str(&g.envelope).expect("envelope is JSON");
    v["record"].clone()
}

fn panos_cols(g: &Generated) -> Vec<String> {
    record(g)
        .as_str()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect()
}

fn vpc_cols(g: &Generated) -> Vec<String> {
    record(g)
        .as_str()
        .unwrap()
        .split(' ')
        .map(str::to_string)
        .collect()
}

fn is_client(ip: &str) -> bool {
    ["10.1.", "10.2.", "10.3.", "10.4."]
        .iter()
        .any(|p| ip.starts_with(p))
}

fn is_nat(ip: &str) -> bool {
    [
        "203.0.113.10",
        "203.0.113.11",
        "203.0.113.12",
        "203.0.113.13",
    ]
    .contains(&ip)
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let c = cfg(3000);
    let a = run(&c);
    let b = run(&c);
    assert_eq!(a, b);
    let other = run(&GenConfig { seed: 2, ..c });
    assert_eq!(other.len(), a.len());
    assert_ne!(
        a.iter().map(|g| &g.envelope).collect::<Vec<_>>(),
        other.iter().map(|g| &g.envelope).collect::<Vec<_>>()
    );
}

#[test]
fn write_dir_writes_exactly_the_requested_events_with_truth() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(10_000);
    let sum = write_dir(&c, dir.path(), false).unwrap();
    let events = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
    let truth = std::fs::read_to_string(dir.path().join("truth.ndjson")).unwrap();
    assert_eq!(sum.events, 10_000);
    assert_eq!(events.lines().count(), 10_000);
    assert_eq!(truth.lines().count(), 10_000);
    assert_eq!(sum.bytes, events.len() as u64);
    assert_eq!(sum.by_format.values().sum::<u64>(), 10_000);
    assert_eq!(sum.by_format.len(), FORMATS.len(), "{sum}");

    let mut stories = HashSet::new();
    for (e, t) in events.lines().zip(truth.lines()) {
        let t: Value = serde_json::from_str(t).unwrap();
        let e: Value = serde_json::from_str(e).unwrap();
        assert_eq!(t.as_object().unwrap().len(), 4);
        assert_eq!(t["format"], e["format"]);
        assert_eq!(t["sensor"], e["sensor"]);
        let story = t["story"].as_str().unwrap();
        assert!(story.starts_with('s') && story.len() >= 7);
        assert!(!t["event_id"].as_str().unwrap().is_empty());
        stories.insert(story.to_string());
    }
    assert_eq!(stories.len() as u64, sum.stories);
    let late = sum.late as f64 / sum.events as f64;
    assert!((late - 0.1).abs() < 0.015, "late share {late}");
    // Same configuration, same bytes on disk.
    let dir2 = tempfile::tempdir().unwrap();
    write_dir(&c, dir2.path(), false).unwrap();
    assert_eq!(
        std::fs::read(dir2.path().join("events.ndjson")).unwrap(),
        events.as_bytes()
    );
}

#[test]
fn envelopes_are_json_with_three_keys_and_ids_are_the_parser_ids() {
    let out = run(&cfg(10_000));
    let mut ids = HashSet::new();
    for g in &out {
        let v: Value = serde_json::from_str(&g.envelope).expect("valid JSON");
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 3, "{}", g.envelope);
        assert_eq!(v["format"], g.format);
        assert_eq!(v["sensor"], g.sensor.as_str());
        assert!(FORMATS.contains(&g.format));
        let rec = &v["record"];
        let expected = match g.format {
            "sysmon" => format!(
                "{}:{}",
                rec["winlog"]["computer_name"].as_str().unwrap(),
                rec["winlog"]["record_id"]
            ),
            "panos" => {
                let cols = panos_cols(g);
                format!("{}:{}", cols[2], cols[39])
            }
            "aws_vpc" => {
                content_event_id(g.format, &g.sensor, rec.as_str().unwrap().as_bytes()).to_string()
            }
            _ => {
                assert!(rec.is_object());
                content_event_id(g.format, &g.sensor, raw_record(&g.envelope).as_bytes())
                    .to_string()
            }
        };
        assert_eq!(g.event_id, expected);
        assert!(
            ids.insert(g.event_id.clone()),
            "duplicate id {}",
            g.event_id
        );
    }
}

#[test]
fn output_is_in_arrival_order_and_lateness_is_bounded() {
    let c = cfg(10_000);
    let out = run(&c);
    assert!(out.windows(2).all(|w| w[0].arrival <= w[1].arrival));
    // On-time records trail their stated time by at most session length + delivery + skew (< 40 s);
    // late ones by at least a minute minus skew. 50 s separates them.
    let max_late = c.max_late.as_nanos() as i64;
    let mut late = 0;
    for g in &out {
        let lag = g.arrival.nanos_since(g.event_time);
        let measured_late = lag > 50_000_000_000;
        assert_eq!(measured_late, g.late, "lag {lag} for {}", g.envelope);
        assert!(lag > -6_000_000_000, "arrives before it happened: {lag}");
        assert!(lag < max_late + 40_000_000_000, "too late: {lag}");
        late += usize::from(measured_late);
    }
    let share = late as f64 / out.len() as f64;
    assert!((share - c.late).abs() < 0.015, "late share {share}");

    let tight = GenConfig {
        late: 0.5,
        max_late: Duration::from_secs(90),
        ..cfg(4000)
    };
    let out = run(&tight);
    let lags: Vec<i64> = out
        .iter()
        .filter(|g| g.late)
        .map(|g| g.arrival.nanos_since(g.event_time))
        .collect();
    let share = lags.len() as f64 / out.len() as f64;
    assert!((share - 0.5).abs() < 0.03, "late share {share}");
    assert!(lags
        .iter()
        .all(|&l| l > 54_000_000_000 && l < 131_000_000_000));
}

#[test]
fn reversed_records_have_the_configured_share() {
    for r in [0.2, 0.6] {
        let c = GenConfig {
            reversed: r,
            nat: 0.5,
            ..cfg(20_000)
        };
        let (mut n, mut rev) = (0usize, 0usize);
        for g in run(&c) {
            let reversed = match g.format {
                "panos" => !is_client(&panos_cols(&g)[7]),
                "aws_vpc" => !is_nat(&vpc_cols(&g)[3]),
                _ => {
                    assert!(!g.reversed);
                    continue;
                }
            };
            assert_eq!(reversed, g.reversed, "{}", g.envelope);
            n += 1;
            rev += usize::from(reversed);
        }
        let share = rev as f64 / n as f64;
        assert!((share - r).abs() < 0.03, "reversed share {share} for {r}");
    }
}

#[test]
fn nated_sessions_have_an_outside_view_with_the_nat_address() {
    let c = GenConfig {
        nat: 0.4,
        ..cfg(20_000)
    };
    let out = run(&c);
    // The firewall tells which public address and port each NATed session got.
    let mut nat_of: HashMap<String, (String, String)> = HashMap::new();
    let mut fw_stories = HashSet::new();
    for g in out.iter().filter(|g| g.format == "panos") {
        let f = panos_cols(g);
        fw_stories.insert(g.story.clone());
        let nat = if g.reversed {
            (f[8].clone(), f[25].clone())
        } else {
            (f[9].clone(), f[26].clone())
        };
        if is_nat(&nat.0) {
            nat_of.insert(g.story.clone(), nat);
        }
    }
    // The firewall logs 98% of internet-bound sessions (and fewer internal ones, so count all stories).
    let stories: HashSet<&str> = out.iter().map(|g| g.story.as_str()).collect();
    let nat_share = nat_of.len() as f64 / 0.98 / stories.len() as f64;
    assert!((nat_share - 0.4).abs() < 0.03, "NAT share {nat_share}");
    assert!(fw_stories.len() > stories.len() / 2);

    let mut vpc_seen = HashSet::new();
    for g in out.iter().filter(|g| g.format == "aws_vpc") {
        let f = vpc_cols(g);
        let public = if g.reversed {
            (f[4].clone(), f[6].clone())
        } else {
            (f[3].clone(), f[5].clone())
        };
        assert!(
            is_nat(&public.0),
            "VPC sees only post-NAT traffic: {}",
            g.envelope
        );
        if let Some(nat) = nat_of.get(&g.story) {
            assert_eq!(&public, nat, "{}", g.envelope);
            vpc_seen.insert(g.story.clone());
        }
    }
    let covered = vpc_seen.len() as f64 / nat_of.len() as f64;
    assert!(
        covered > 0.9,
        "only {covered} of NATed sessions have a VPC record"
    );

    // Suricata sits outside the NAT too: for NATed sessions its source is the public address.
    for g in out.iter().filter(|g| g.format == "suricata") {
        if let Some(nat) = nat_of.get(&g.story) {
            let r = record(g);
            assert_eq!(r["src_ip"].as_str().unwrap(), nat.0);
            assert_eq!(r["src_port"].to_string(), nat.1);
        }
    }
}

#[test]
fn dns_lookups_precede_their_connections() {
    let out = run(&cfg(10_000));
    let mut lookups: HashMap<String, f64> = HashMap::new();
    let mut conns: HashMap<String, f64> = HashMap::new();
    for g in out.iter().filter(|g| g.format == "zeek") {
        let r = record(g);
        let ts = r["ts"].as_f64().unwrap();
        match r["_path"].as_str().unwrap() {
            "dns" => {
                lookups.insert(g.story.clone(), ts);
            }
            "conn" if r["id.resp_p"] != 53 => {
                conns.insert(g.story.clone(), ts);
            }
            _ => {}
        }
    }
    let mut both = 0;
    for (story, dns) in &lookups {
        if let Some(conn) = conns.get(story) {
            let lead = conn - dns;
            assert!((0.099..=0.801).contains(&lead), "lead {lead} in {story}");
            both += 1;
        }
    }
    assert!(both > 100, "{both}");
}

#[test]
fn large_records_stay_valid() {
    let c = GenConfig {
        large: 0.02,
        ..cfg(1500)
    };
    let out = run(&c);
    let big: Vec<_> = out
        .iter()
        .filter(|g| g.envelope.len() > 256 << 10)
        .collect();
    assert!(!big.is_empty());
    for g in big {
        assert!(g.envelope.len() <= (2 << 20) + 8192);
        let v: Value = serde_json::from_str(&g.envelope).unwrap();
        assert!(v["record"].is_object());
    }
}

#[test]
fn sensor_selection_restricts_formats() {
    let c = GenConfig {
        sensors: vec!["zeek".into(), "fw-edge-1".into()],
        ..cfg(2000)
    };
    let out = run(&c);
    assert_eq!(out.len(), 2000);
    assert!(out
        .iter()
        .all(|g| g.format == "zeek" || g.format == "panos"));

    // A selection that can never see anything ends instead of spinning.
    let none = GenConfig {
        sensors: vec!["aws_vpc".into()],
        nat: 0.0,
        ..cfg(10)
    };
    assert_eq!(run(&none).len(), 0);
}

#[test]
fn memory_stays_bounded_while_streaming() {
    let c = GenConfig {
        late: 0.0,
        ..cfg(100_000)
    };
    let mut g = Generator::new(&c);
    let mut max_queued = 0;
    let mut n = 0;
    while g.next().is_some() {
        n += 1;
        max_queued = max_queued.max(g.queued());
    }
    assert_eq!(n, 100_000);
    assert!(max_queued < 10_000, "queue grew to {max_queued}");
}

#[test]
fn each_sensor_writes_with_its_own_fixed_clock_offset() {
    let exact = GenConfig {
        skew: Duration::ZERO,
        ..cfg(3000)
    };
    let g = Generator::new(&exact);
    assert_eq!(g.skews(), [0; 5]);
    for e in g.filter(|e| !e.late) {
        let lag = e.arrival.nanos_since(e.event_time);
        assert!((0..35_000_000_000).contains(&lag), "lag {lag}");
    }

    let c = GenConfig {
        skew: Duration::from_secs(30),
        ..cfg(6000)
    };
    let skews = Generator::new(&c).skews();
    assert!(skews.iter().all(|s| s.abs() <= 30_000_000_000));
    assert!(skews.windows(2).any(|w| w[0] != w[1]));
    // Sysmon (index 0) stamps the connection 1–17 ms after Zeek's `ts` (index 2) on a true clock, so
    // in the output the two differ by that plus the difference of their offsets, for every session.
    let expected = (skews[0] - skews[2]) as f64 / 1e9;
    let out = run(&c);
    let mut sysmon = HashMap::new();
    for g in out.iter().filter(|g| g.format == "sysmon") {
        sysmon.insert(g.story.clone(), g.event_time);
    }
    let mut compared = 0;
    for g in out.iter().filter(|g| g.format == "zeek") {
        let r = record(g);
        if r["_path"] != "conn" || r["id.resp_p"] == 53 {
            continue;
        }
        if let Some(t) = sysmon.get(&g.story) {
            let d = t.nanos_since(g.event_time) as f64 / 1e9 - expected;
            assert!((0.0..0.02).contains(&d), "offset off by {d}");
            compared += 1;
        }
    }
    assert!(compared > 100, "{compared}");
}
