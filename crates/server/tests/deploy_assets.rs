//! The Grafana dashboard and the Prometheus alert rules in deploy/ name only metrics the code exports
//! (a renamed metric would otherwise leave a silent, empty panel or an alert that never fires).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `storyline_...` names in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("storyline_") {
        let start = i + pos;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end] == b'_') {
            end += 1;
        }
        if start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
            out.insert(text[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut dirs = vec![root().join("crates")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.to_string_lossy().contains("/src/")
            {
                let text = std::fs::read_to_string(&p).unwrap();
                for n in metric_names(&text) {
                    if text.contains(&format!("\"{n}\"")) {
                        names.insert(n);
                    }
                }
            }
        }
    }
    names
}

#[test]
fn dashboards_and_alerts_use_exported_metrics() {
    let exported = exported();
    assert!(
        exported.contains("storyline_events_accepted_total"),
        "{exported:?}"
    );
    let dashboard = std::fs::read_to_string(root().join("deploy/grafana/storyline.json")).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().unwrap().len() >= 10);
    let alerts = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    let mut used = metric_names(&dashboard);
    used.extend(metric_names(&alerts));
    let unknown: Vec<_> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(unknown.is_empty(), "not exported by any crate: {unknown:?}");
    // Every alert is explained in the operations guide.
    let ops = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    for line in alerts.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                ops.contains(name),
                "docs/operations.md does not explain {name}"
            );
        }
    }
}
