//! `[store]` in the binary: `storyline check` names a missing PostgreSQL url and hides passwords, `/readyz`
//! on the embedded store, and `storyline dead-letters list --config` on a PostgreSQL store.

mod common;
#[path = "common/pg.rs"]
mod pg;

use common::*;
use std::process::Command;

fn storyline(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn check_names_the_store_keys_and_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, "[store]\nkind = \"postgres\"\n").unwrap();
    let out = storyline(&["check", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("store.url") && err.contains("required"),
        "{err}"
    );

    std::fs::write(
        &path,
        "[store]\nkind = \"postgres\"\nurl = \"host=db user=storyline password=s3cret dbname=storyline\"\n",
    )
    .unwrap();
    let out = storyline(&["check", "--config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("kind = \"postgres\"") && printed.contains("schema = \"storyline\""),
        "{printed}"
    );
    assert!(
        printed.contains("password=***") && !printed.contains("s3cret"),
        "{printed}"
    );
}

#[test]
fn the_embedded_store_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let server = pg::Guarded(Some(Server::start(&config, port)));
    let r = reqwest::blocking::get(format!("{}/readyz", server.get().base)).unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["store"], "embedded", "{body}");
    let metrics = reqwest::blocking::get(format!("{}/metrics", server.get().base))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("storyline_store_ready{store=\"embedded\"} 1"),
        "{metrics}"
    );
}

#[test]
fn dead_letters_are_listed_from_postgres() {
    let Some(url) = pg::test_server() else { return };
    let schema = pg::FreshSchema::new(&url, "sl_dead");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = pg::write_pg_config(dir.path(), port, &url, &schema.schema, 1, 1);
    let mut server = pg::Guarded(Some(Server::start(&config, port)));
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/events", server.get().base))
        .body("{\"format\":\"klingon\",\"sensor\":\"s\",\"record\":{}}\n{oops\n")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let report: serde_json::Value = r.json().unwrap();
    assert_eq!(report["rejected"], 2, "{report}");
    // While the server runs (PostgreSQL is shared), and after it stopped.
    for _ in 0..2 {
        let out = storyline(&[
            "dead-letters",
            "list",
            "--config",
            config.to_str().unwrap(),
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["line"], 1);
        assert_eq!(lines[1]["line"], 2);
        assert_eq!(lines[1]["raw"]["text"], "{oops");
        if server.is_running() {
            server.take().terminate();
        }
    }
}
