//! `storyline tenants` against a real `storyline run`: lifecycle through the CLI, and a tenant that was
//! awake when the process was killed is woken again by the next start.

mod common;

use common::{bin, free_port, read_stories, write_config, Server};
use std::process::Command;
use std::time::{Duration, Instant};

fn tenants(base: &str, admin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("tenants")
        .args(args)
        .args(["--url", base])
        .env("STORYLINE_ADMIN_TOKEN", admin)
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
}

fn post(base: &str, token: &str, id: &str) -> u16 {
    let line = serde_json::json!({
        "format": "ecs", "sensor": "fw",
        "record": {"@timestamp": storyline_model::Timestamp::now().to_rfc3339(), "event": {"id": id},
                   "source": {"ip": "10.1.0.1", "port": 40000}, "destination": {"ip": "10.1.0.2", "port": 443},
                   "network": {"transport": "tcp"}}
    });
    reqwest::blocking::Client::new()
        .post(format!("{base}/v1/events"))
        .bearer_auth(token)
        .body(format!("{line}\n"))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn tenant_lifecycle_through_the_cli_and_wake_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let made = ok(Command::new(bin())
        .args(["tenants", "new-admin-token"])
        .output()
        .unwrap());
    let admin = field(&made, "token:").to_string();
    let hash = field(&made, "sha256:").to_string();
    let port = free_port();
    let config = write_config(
        dir.path(),
        port,
        &format!("\n[tenants]\nanonymous = false\nadmin_token_sha256 = \"{hash}\"\n"),
    );
    let server = Server::start(&config, port);
    let base = server.base.clone();

    let created = ok(tenants(
        &base,
        &admin,
        &["create", "acme", "--events-per-second", "1000"],
    ));
    let token = field(&created, "token:").to_string();
    assert!(created.contains("events_per_second=1000"), "{created}");
    // A wrong admin token is refused with the server's reason.
    let denied = tenants(&base, "not-the-admin", &["list"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("401"));

    assert_eq!(post(&base, &token, "c1"), 200);
    let listed = ok(tenants(&base, &admin, &["list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("acme") && l.contains("awake")),
        "{listed}"
    );

    // Killed while acme is awake: the next start wakes it and publishes its story.
    server.kill();
    // Restarted with one setting changed: the default tenant's history names the section, not values.
    write_config(
        dir.path(),
        port,
        &format!("\n[tenants]\nanonymous = false\nadmin_token_sha256 = \"{hash}\"\nidle_after = \"3m\"\n"),
    );
    let server = Server::start(&config, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    let stories = loop {
        let s = read_stories(&dir.path().join("stories.ndjson"));
        if s.iter().any(|s| s["tenant"] == "acme") {
            break s;
        }
        assert!(Instant::now() < deadline, "acme's story never came");
        std::thread::sleep(Duration::from_millis(100));
    };
    let acme: Vec<_> = stories.iter().filter(|s| s["tenant"] == "acme").collect();
    assert_eq!(acme[0]["event_ids"].as_array().unwrap().len(), 1);
    let history = ok(tenants(&base, &admin, &["history", "acme"]));
    let kinds: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(kinds, vec!["created", "woke", "started"], "{history}");

    let default_history = ok(tenants(&base, &admin, &["history", "t"]));
    let changes: Vec<&str> = default_history
        .lines()
        .filter(|l| l.contains("config_changed"))
        .collect();
    assert_eq!(changes.len(), 1, "{default_history}");
    assert!(
        changes[0].ends_with("changed: tenants"),
        "{default_history}"
    );
    assert!(
        !default_history.contains(&hash),
        "no config value in the history"
    );

    let rotated = ok(tenants(&base, &admin, &["rotate-token", "acme"]));
    let new_token = field(&rotated, "token:");
    assert_eq!(post(&base, &token, "c2"), 401);
    assert_eq!(post(&base, new_token, "c3"), 200);

    let refused = tenants(&base, &admin, &["delete", "acme"]);
    assert!(!refused.status.success(), "delete needs --yes");
    let deleted = ok(tenants(&base, &admin, &["delete", "acme", "--yes"]));
    assert!(deleted.contains("deleted acme"), "{deleted}");
    let listed = ok(tenants(&base, &admin, &["list"]));
    assert!(!listed.contains("acme"), "{listed}");
    server.terminate();
}
