//! Records/s of `parse_envelope` per format, on realistic records from the synthetic-traffic generator
//! (`large: 0.0`: no oversized extra fields). ECS records are the model's own ECS JSON of the generated
//! events (the generator writes no ECS), sent with format `ecs`. The generator writes none of `nfdump`,
//! `argus`, `gcp_vpc`, `cef` and `zeek_tsv` either: each generated flow is also written in those formats
//! (see `synthesized`). `zeek_tsv` envelopes carry the whole header with every record; the
//! `header_tracker/zeek_tsv` group reads a file the usual way, header once, then bare lines.
//!
//! Run: `cargo bench -p storyline-parse --bench parsers`. Criterion's "thrpt" line is records/s.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::BTreeMap;
use std::time::Duration;
use storyline_generate::{GenConfig, Generator};
use storyline_model::{Event, Timestamp};
use storyline_parse::{parse_envelope, HeaderTracker, Limits};

const EVENTS: u64 = 20_000;

fn envelopes() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let cfg = GenConfig {
        events: EVENTS,
        seed: 7,
        large: 0.0,
        ..GenConfig::default()
    };
    let limits = Limits::default();
    let mut by_format: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    for g in Generator::new(&cfg) {
        let parsed = parse_envelope(g.envelope.as_bytes(), &limits)
            .unwrap_or_else(|e| panic!("generated record rejected: {e}\n{}", g.envelope));
        let ecs = serde_json::json!({
            "format": "ecs",
            "sensor": parsed.sensor.as_str(),
            "record": parsed.event.to_ecs_json(),
        });
        by_format
            .entry("ecs")
            .or_default()
            .push(ecs.to_string().into_bytes());
        for (format, record) in synthesized(&parsed.event) {
            let line = serde_json::json!({"format": format, "sensor": parsed.sensor.as_str(), "record": record})
                .to_string();
            if let Err(e) = parse_envelope(line.as_bytes(), &limits) {
                panic!("synthesized record rejected: {e}\n{line}");
            }
            by_format.entry(format).or_default().push(line.into_bytes());
        }
        by_format
            .entry(g.format)
            .or_default()
            .push(g.envelope.into_bytes());
    }
    by_format
}

/// The generator writes none of these formats, so each generated flow is also written the way nfdump,
/// Argus, GCP, a CEF firewall and a Zeek TSV stream would report it (records as in the fixtures).
fn synthesized(e: &Event) -> Vec<(&'static str, serde_json::Value)> {
    let (Some(src), Some(dst), Some(proto)) = (
        e.source.ip,
        e.destination.ip,
        e.network.transport.as_deref(),
    ) else {
        return Vec::new();
    };
    let (sp, dp) = (e.source.port.unwrap_or(0), e.destination.port.unwrap_or(0));
    let (sb, db) = (
        e.source.bytes.unwrap_or(0),
        e.destination.bytes.unwrap_or(0),
    );
    let (spk, dpk) = (
        e.source.packets.unwrap_or(1),
        e.destination.packets.unwrap_or(0),
    );
    let start = e.timestamp;
    let dur = e.event.duration.unwrap_or(0);
    let end = Timestamp(start.0 + dur);
    let secs = |t: Timestamp| {
        format!(
            "{}.{:06}",
            t.0.div_euclid(1_000_000_000),
            t.0.rem_euclid(1_000_000_000) / 1000
        )
    };
    let nf_time = |t: Timestamp| {
        let r = t.to_rfc3339().replace('T', " ").replace('Z', "");
        let (whole, frac) = r.split_once('.').unwrap_or((&r, "0"));
        format!("{whole}.{:0<3}", &frac[..frac.len().min(3)])
    };
    let upper = proto.to_ascii_uppercase();
    let nfdump = format!(
        "{},{},{:.3},{src},{dst},{sp},{dp},{upper},...AP.SF,0,0,{spk},{sb},{dpk},{db},2,1,0,0,24,0,0,1,0.0.0.0,0.0.0.0,0,0,\
         00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,\
         0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0.000,0.000,0.000,192.0.2.1,0/0,1,1970-01-01 00:00:00.000",
        nf_time(start),
        nf_time(end),
        dur as f64 / 1e9
    );
    let argus = format!(
        "{},{},{src},{sp},{dst},{dp},{proto},{},{}",
        secs(start),
        secs(end),
        spk + dpk,
        sb + db
    );
    let gcp = serde_json::json!({
        "insertId": format!("{:x}", start.0),
        "jsonPayload": {
            "connection": {"src_ip": src.to_string(), "src_port": sp, "dest_ip": dst.to_string(), "dest_port": dp,
                           "protocol": e.network.iana_number.unwrap_or(6)},
            "reporter": "SRC", "bytes_sent": sb.to_string(), "packets_sent": spk.to_string(),
            "start_time": start.to_rfc3339(), "end_time": end.to_rfc3339(), "rtt_msec": "17",
            "src_instance": {"project_id": "storyline-demo", "region": "us-central1", "vm_name": "web-frontend-1", "zone": "us-central1-a"},
            "src_vpc": {"project_id": "storyline-demo", "subnetwork_name": "default", "vpc_name": "default"}
        },
        "logName": "projects/storyline-demo/logs/compute.googleapis.com%2Fvpc_flows",
        "resource": {"labels": {"location": "us-central1-a", "project_id": "storyline-demo", "subnetwork_name": "default"}, "type": "gce_subnetwork"},
        "timestamp": end.to_rfc3339(),
    });
    let cef = format!(
        "<134>Nov 21 10:00:03 fw-edge-2 CEF:0|Example Networks|EdgeWall|7.2.1|100|Traffic allowed|3|rt={} start={} \
         end={} src={src} spt={sp} dst={dst} dpt={dp} proto={upper} act=accept in={sb} out={db} deviceDirection=1 \
         suser=CORP\\\\alice shost=WS-0142 app=HTTPS cs1Label=Rule Name cs1=allow web, general cs2Label=Zone cs2=trust",
        end.as_millis(),
        start.as_millis(),
        end.as_millis()
    );
    vec![
        ("nfdump", nfdump.into()),
        ("argus", argus.into()),
        ("gcp_vpc", gcp),
        ("cef", cef.into()),
        (
            "zeek_tsv",
            format!("{ZEEK_CONN_HEADER}{}", zeek_tsv_line(e, &secs(start))).into(),
        ),
    ]
}

const ZEEK_CONN_HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n\
    #fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\t\
    conn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n\
    #types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\t\
    string\tcount\tcount\tcount\tcount\tset[string]\n";

/// A conn.log record line for the flow (header: [`ZEEK_CONN_HEADER`]).
fn zeek_tsv_line(e: &Event, ts: &str) -> String {
    let f = |o: Option<u64>| o.map_or("-".to_owned(), |n| n.to_string());
    format!(
        "{ts}\tC{:x}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.6}\t{}\t{}\tSF\tT\tF\t0\tShADadfF\t{}\t{}\t{}\t{}\t(empty)",
        e.timestamp.0 as u64 & 0xffff_ffff,
        e.source.ip.map_or("-".into(), |i| i.to_string()),
        f(e.source.port.map(u64::from)),
        e.destination.ip.map_or("-".into(), |i| i.to_string()),
        f(e.destination.port.map(u64::from)),
        e.network.transport.as_deref().unwrap_or("-"),
        e.network.protocol.as_deref().unwrap_or("-"),
        e.event.duration.unwrap_or(0) as f64 / 1e9,
        f(e.source.bytes),
        f(e.destination.bytes),
        f(e.source.packets),
        f(e.source.bytes),
        f(e.destination.packets),
        f(e.destination.bytes),
    )
}

fn parsers(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse_envelope");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let all = envelopes();
    for (format, lines) in &all {
        let mean_len = lines.iter().map(Vec::len).sum::<usize>() / lines.len().max(1);
        eprintln!("{format}: {} envelopes, mean {mean_len} bytes", lines.len());
        group.throughput(Throughput::Elements(lines.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(format), lines, |b, lines| {
            b.iter(|| {
                for line in lines {
                    let _ = black_box(parse_envelope(black_box(line), &limits));
                }
            })
        });
    }
    group.finish();

    // A Zeek TSV file as it is read: the header once, then bare record lines through a tracker.
    let mut group = c.benchmark_group("header_tracker");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let lines: Vec<String> = all["zeek_tsv"]
        .iter()
        .map(|env| {
            let v: serde_json::Value = serde_json::from_slice(env).expect("own envelope");
            let text = v["record"].as_str().expect("text record").to_owned();
            text.lines().last().expect("record line").to_owned()
        })
        .collect();
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("zeek_tsv", |b| {
        b.iter(|| {
            let mut t = HeaderTracker::new("zeek_tsv").expect("known format");
            for h in ZEEK_CONN_HEADER.lines() {
                assert!(t.parse_line("zeek-core", h.as_bytes(), &limits).is_none());
            }
            for line in &lines {
                let _ = black_box(t.parse_line("zeek-core", black_box(line.as_bytes()), &limits));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, parsers);
criterion_main!(benches);
