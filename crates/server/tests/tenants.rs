//! Tenants over the real HTTP API: lifecycle, isolation (wrong tokens, another tenant's id in the path),
//! quotas, idle sleep and wake, job history, and the OpenAPI document.

mod common;

use common::{call, envelope, eventually, start_with, Running, ADMIN};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use storyline_io::StorySink;
use storyline_store::{BucketRange, Store};

fn create(r: &Running, id: &str, quotas: Option<Value>) -> String {
    let body = match quotas {
        Some(q) => serde_json::json!({"id": id, "quotas": q}),
        None => serde_json::json!({"id": id}),
    };
    let resp = call(
        Method::POST,
        r,
        "/v1/tenants",
        Some(ADMIN),
        Some(body.to_string()),
    );
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().unwrap();
    assert_eq!(v["tenant"]["id"], id);
    v["token"].as_str().unwrap().to_string()
}

fn post_events(
    r: &Running,
    path: &str,
    token: Option<&str>,
    lines: &[String],
) -> reqwest::blocking::Response {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    call(Method::POST, r, path, token, Some(body))
}

/// Waits until the sink has `want` stories of `tenant` and returns them; other tenants' stories go back
/// to the sink's buffer for later calls.
fn stories_of(r: &Running, tenant: &str, want: usize) -> Vec<storyline_model::Story> {
    let mut mine = Vec::new();
    eventually(20, || {
        let (ours, others): (Vec<_>, Vec<_>) =
            r.sink.take().into_iter().partition(|s| s.tenant == tenant);
        mine.extend(ours);
        r.sink.publish(&others).unwrap();
        (mine.len() >= want).then_some(())
    });
    mine
}

#[test]
fn tenants_are_isolated_by_token_and_path() {
    let r = start_with(|c| c.tenants.anonymous = false);
    let a = create(&r, "acme", None);
    let b = create(&r, "globex", None);
    // Creating needs the admin token; a tenant token or none is refused.
    let body = Some(r#"{"id":"evil"}"#.to_string());
    assert_eq!(
        call(Method::POST, &r, "/v1/tenants", Some(&a), body.clone()).status(),
        403
    );
    assert_eq!(
        call(Method::POST, &r, "/v1/tenants", None, body).status(),
        401
    );
    assert_eq!(
        call(
            Method::POST,
            &r,
            "/v1/tenants",
            Some(ADMIN),
            Some(r#"{"id":"acme"}"#.into())
        )
        .status(),
        409
    );

    // Each token writes its own tenant.
    let resp = post_events(
        &r,
        "/v1/events",
        Some(&a),
        &[envelope("a1", 1000), envelope("a2", 1000)],
    );
    assert_eq!(resp.status(), 200);
    let resp = post_events(
        &r,
        "/v1/tenants/globex/events",
        Some(&b),
        &[envelope("b1", 2000)],
    );
    assert_eq!(resp.status(), 200);
    // Another tenant's id in the path, a forged token, no token: refused, nothing stored.
    let resp = post_events(
        &r,
        "/v1/tenants/acme/events",
        Some(&b),
        &[envelope("x1", 3000)],
    );
    assert_eq!(resp.status(), 403);
    let forged = format!(
        "{}{}",
        &a[..a.len() - 1],
        if a.ends_with('0') { '1' } else { '0' }
    );
    assert_eq!(
        post_events(&r, "/v1/events", Some(&forged), &[envelope("x2", 3000)]).status(),
        401
    );
    assert_eq!(
        post_events(&r, "/v1/events", None, &[envelope("x3", 3000)]).status(),
        401
    );
    assert_eq!(
        post_events(&r, "/v1/events", Some("Basic abc"), &[envelope("x4", 3000)]).status(),
        401
    );

    let acme = stories_of(&r, "acme", 1);
    assert_eq!(acme.len(), 1);
    assert_eq!(acme[0].event_count, 2);
    let globex = stories_of(&r, "globex", 1);
    assert_eq!(globex.len(), 1);
    assert_eq!(globex[0].event_ids.len(), 1);
    // The refused events went nowhere.
    let all: Vec<_> = acme
        .iter()
        .chain(&globex)
        .flat_map(|s| s.event_ids.clone())
        .collect();
    assert_eq!(all.len(), 3);

    // An envelope that names another tenant gains nothing: the token decides where a line goes.
    let mut forged: Value = serde_json::from_str(&envelope("x5", 4000)).unwrap();
    forged["tenant"] = "globex".into();
    let resp = post_events(&r, "/v1/events", Some(&a), &[forged.to_string()]);
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().unwrap();
    if v["accepted"] == 1 {
        let landed = stories_of(&r, "acme", 1);
        assert_eq!(landed[0].event_ids.len(), 1, "{landed:?}");
    } else {
        assert_eq!(v["rejected"], 1, "{v}");
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        r.sink.take().iter().all(|s| s.tenant != "globex"),
        "nothing reached globex"
    );

    // Reading: own tenant yes, the other's no.
    assert_eq!(
        call(Method::GET, &r, "/v1/tenants/acme", Some(&a), None).status(),
        200
    );
    assert_eq!(
        call(Method::GET, &r, "/v1/tenants/globex", Some(&a), None).status(),
        403
    );
    assert_eq!(
        call(
            Method::GET,
            &r,
            "/v1/tenants/globex/history",
            Some(&a),
            None
        )
        .status(),
        403
    );
    assert_eq!(
        call(
            Method::GET,
            &r,
            "/v1/tenants/globex/dead-letters",
            Some(&a),
            None
        )
        .status(),
        403
    );
    assert_eq!(
        call(Method::GET, &r, "/v1/tenants", Some(&a), None).status(),
        403
    );
    // Bad lines are dead-lettered in the sender's tenant only.
    let resp = post_events(&r, "/v1/events", Some(&a), &["{broken".to_string()]);
    assert_eq!(resp.status(), 200);
    let dl: Value = call(
        Method::GET,
        &r,
        "/v1/tenants/acme/dead-letters",
        Some(&a),
        None,
    )
    .json()
    .unwrap();
    assert_eq!(dl["dead_letters"].as_array().unwrap().len(), 1);
    assert_eq!(dl["dead_letters"][0]["code"], "malformed_json");
    let dl: Value = call(
        Method::GET,
        &r,
        "/v1/tenants/globex/dead-letters",
        Some(&b),
        None,
    )
    .json()
    .unwrap();
    assert!(dl["dead_letters"].as_array().unwrap().is_empty());
}

#[test]
fn lifecycle_rotate_quotas_delete() {
    let r = start_with(|_| {});
    let t1 = create(&r, "acme", None);
    let list: Value = call(Method::GET, &r, "/v1/tenants", Some(ADMIN), None)
        .json()
        .unwrap();
    let ids: Vec<&str> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["acme", "t"], "the default tenant is listed too");

    // Rotation revokes the old token.
    let v: Value = call(Method::POST, &r, "/v1/tenants/acme/token", Some(&t1), None)
        .json()
        .unwrap();
    let t2 = v["token"].as_str().unwrap().to_string();
    assert_ne!(t1, t2);
    assert_eq!(
        call(Method::GET, &r, "/v1/tenants/acme", Some(&t1), None).status(),
        401
    );
    assert_eq!(
        call(Method::GET, &r, "/v1/tenants/acme", Some(&t2), None).status(),
        200
    );

    // Quotas are the admin's to set.
    let q = Some(r#"{"events_per_second": 5}"#.to_string());
    assert_eq!(
        call(
            Method::PUT,
            &r,
            "/v1/tenants/acme/quotas",
            Some(&t2),
            q.clone()
        )
        .status(),
        403
    );
    let v: Value = call(Method::PUT, &r, "/v1/tenants/acme/quotas", Some(ADMIN), q)
        .json()
        .unwrap();
    assert_eq!(v["quotas"]["events_per_second"], 5);
    let bad = Some(r#"{"events_per_sec": 5}"#.to_string());
    assert_eq!(
        call(Method::PUT, &r, "/v1/tenants/acme/quotas", Some(ADMIN), bad).status(),
        400
    );

    assert_eq!(
        post_events(&r, "/v1/events", Some(&t2), &[envelope("e1", 1000)]).status(),
        200
    );
    stories_of(&r, "acme", 1);

    let h: Value = call(Method::GET, &r, "/v1/tenants/acme/history", Some(&t2), None)
        .json()
        .unwrap();
    let kinds: Vec<&str> = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["created", "token_rotated", "quotas_changed", "woke"]
    );

    assert_eq!(
        call(Method::DELETE, &r, "/v1/tenants/t", Some(ADMIN), None).status(),
        409,
        "the default tenant stays"
    );
    // Deleting takes the data with it.
    let store_dir = r.dir.path().join("data");
    assert_eq!(
        call(Method::DELETE, &r, "/v1/tenants/acme", Some(&t2), None).status(),
        403
    );
    let v: Value = call(Method::DELETE, &r, "/v1/tenants/acme", Some(ADMIN), None)
        .json()
        .unwrap();
    assert_eq!(v["events"], 1);
    assert_eq!(
        call(Method::GET, &r, "/v1/tenants/acme", Some(ADMIN), None).status(),
        404
    );
    assert_eq!(
        call(Method::GET, &r, "/v1/tenants/acme", Some(&t2), None).status(),
        401
    );
    assert_eq!(
        post_events(&r, "/v1/events", Some(&t2), &[envelope("e2", 1000)]).status(),
        401
    );
    assert_eq!(
        post_events(
            &r,
            "/v1/tenants/acme/events",
            Some(ADMIN),
            &[envelope("e3", 1000)]
        )
        .status(),
        404
    );
    drop(r);
    let store =
        storyline_store::embedded::EmbeddedStore::open(&store_dir, Default::default()).unwrap();
    for shard in 0..16 {
        assert!(store
            .scan("acme", shard, BucketRange::all(), None, 10)
            .unwrap()
            .is_empty());
    }
    assert!(store.records("history/acme/", None, 10).unwrap().is_empty());
    assert!(store.records("tenant/acme", None, 10).unwrap().is_empty());
}

#[test]
fn a_tenant_over_its_quota_gets_429_and_others_do_not_notice() {
    let r = start_with(|_| {});
    let noisy = create(
        &r,
        "noisy",
        Some(serde_json::json!({"events_per_second": 10})),
    );
    let quiet = create(&r, "quiet", None);
    let batch: Vec<String> = (0..30)
        .map(|i| envelope(&format!("n{i}"), 1000 + i))
        .collect();
    // The first batch overdraws the bucket once (by 20 events: 2 s at 10/s); the next must wait for the
    // debt to be repaid.
    assert_eq!(
        post_events(&r, "/v1/events", Some(&noisy), &batch).status(),
        200
    );
    let resp = post_events(&r, "/v1/events", Some(&noisy), &batch);
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // 20 events of debt at 10/s, less the time the first request took, rounded up.
    assert!((1..=2).contains(&retry), "{retry}");
    let v: Value = resp.json().unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("events_per_second"),
        "{v}"
    );
    assert_eq!(
        post_events(&r, "/v1/events", Some(&quiet), &batch).status(),
        200
    );
    std::thread::sleep(Duration::from_millis(600 + 1000 * retry));
    assert_eq!(
        post_events(&r, "/v1/events", Some(&noisy), &batch[..1]).status(),
        200
    );
    let metrics = call(Method::GET, &r, "/metrics", None, None)
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("storyline_quota_rejections_total")
                && l.contains("tenant=\"noisy\"")),
        "{metrics}"
    );
}

#[test]
fn an_idle_tenant_sleeps_after_publishing_and_wakes_on_its_next_event() {
    let r = start_with(|c| c.tenants.idle_after = Duration::from_millis(100));
    let tok = create(&r, "sleepy", None);
    let state = |r: &Running| -> String {
        let v: Value = call(Method::GET, r, "/v1/tenants/sleepy", Some(&tok), None)
            .json()
            .unwrap();
        v["state"].as_str().unwrap().to_string()
    };
    assert_eq!(state(&r), "asleep", "a new tenant holds no workers");
    assert_eq!(
        post_events(&r, "/v1/events", Some(&tok), &[envelope("s1", 1000)]).status(),
        200
    );
    assert_eq!(state(&r), "awake");
    eventually(20, || (state(&r) == "asleep").then_some(())).expect("fell asleep");
    // It slept only after its story was out.
    let first = stories_of(&r, "sleepy", 1);
    assert_eq!(first.len(), 1);
    assert_eq!(
        post_events(&r, "/v1/events", Some(&tok), &[envelope("s2", 2000)]).status(),
        200
    );
    assert_eq!(state(&r), "awake");
    let second = stories_of(&r, "sleepy", 1);
    assert_eq!(second[0].event_ids.len(), 1);
    assert_ne!(second[0].story_id, first[0].story_id);
    let h: Value = call(
        Method::GET,
        &r,
        "/v1/tenants/sleepy/history",
        Some(&tok),
        None,
    )
    .json()
    .unwrap();
    let kinds: Vec<&str> = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["created", "woke", "slept", "woke"]);
}

#[test]
fn the_openapi_document_describes_every_route_that_is_served() {
    let r = start_with(|_| {});
    let tok = create(&r, "doc", None);
    let doc: Value = call(Method::GET, &r, "/v1/openapi.json", None, None)
        .json()
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 12);
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            assert!(op["operationId"].is_string(), "{method} {path}");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Read-only and harmless calls only: everything else is exercised above.
            if m == Method::DELETE {
                continue;
            }
            let url = path.replace("{tenant}", "doc");
            let token = if path == "/v1/events" {
                Some(tok.as_str())
            } else {
                Some(ADMIN)
            };
            let body = match path.as_str() {
                "/v1/tenants" if m == Method::POST => Some(r#"{"id":"doc2"}"#.to_string()),
                p if p.ends_with("/quotas") => Some("{}".to_string()),
                _ => Some(String::new()),
            };
            let status = call(m.clone(), &r, &url, token, body).status().as_u16();
            let documented = op["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(&status.to_string()),
                "{method} {path} answered {status}, not among its documented responses"
            );
            assert!(
                status != 404 && status != 405,
                "{method} {path} is not served"
            );
        }
    }
}

#[test]
fn a_tenant_with_too_many_open_stories_is_asked_to_wait() {
    let r = start_with(|_| {});
    let tok = create(&r, "busy", Some(serde_json::json!({"max_open_stories": 3})));
    // New flows faster than they close: open stories pile up until the quota answers.
    let refused = eventually(10, || {
        let port = 10_000 + (storyline_model::Timestamp::now().0 / 1_000_000 % 50_000) as u16;
        let lines: Vec<String> = (0..5)
            .map(|i| envelope(&format!("o{port}-{i}"), port + i))
            .collect();
        let resp = post_events(&r, "/v1/events", Some(&tok), &lines);
        if resp.status() == 429 {
            let v: Value = resp.json().unwrap();
            return Some(v["error"].as_str().unwrap().to_string());
        }
        assert_eq!(resp.status(), 200);
        std::thread::sleep(Duration::from_millis(20));
        None
    })
    .expect("the open-stories quota never answered");
    assert!(refused.contains("max_open_stories"), "{refused}");
    // Another tenant is not held back by it.
    assert_eq!(
        post_events(&r, "/v1/events", None, &[envelope("free", 999)]).status(),
        200
    );
}
