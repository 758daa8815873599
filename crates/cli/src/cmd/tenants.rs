//! `storyline tenants`: tenant lifecycle through a running service's REST API (`/v1/tenants`), so the
//! service that owns the workers applies every change (a tenant deleted here stops its workers there).

use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::Value;

#[derive(clap::Args)]
pub struct Conn {
    /// The service's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:7878", env = "STORYLINE_URL")]
    url: String,
    /// The admin token (`[tenants] admin_token_sha256` holds its hash on the service).
    #[arg(long, env = "STORYLINE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a tenant; prints its first API token (shown once: only its hash is kept).
    Create {
        id: String,
        #[command(flatten)]
        quotas: QuotaArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Every tenant, with its quotas and whether its workers are awake.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// One tenant.
    Show {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Replace every token of a tenant with a new one; prints it.
    RotateToken {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set a tenant's quotas (an option left out means unlimited).
    SetQuotas {
        id: String,
        #[command(flatten)]
        quotas: QuotaArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a tenant and all of its data (events, state, dead letters, history).
    Delete {
        id: String,
        /// Required: deleting cannot be undone.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// A tenant's job history: created, started, woke, slept, quotas changed, token rotated, errors.
    History {
        id: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a new admin token and the SHA-256 to put in `[tenants] admin_token_sha256`.
    NewAdminToken,
}

#[derive(clap::Args)]
pub struct QuotaArgs {
    /// Sustained events per second.
    #[arg(long)]
    events_per_second: Option<u64>,
    /// Sustained request bytes per second (after decompression).
    #[arg(long)]
    bytes_per_second: Option<u64>,
    /// Most stories correlating at once.
    #[arg(long)]
    max_open_stories: Option<u64>,
}

impl QuotaArgs {
    fn json(&self) -> Value {
        let mut q = serde_json::Map::new();
        for (k, v) in [
            ("events_per_second", self.events_per_second),
            ("bytes_per_second", self.bytes_per_second),
            ("max_open_stories", self.max_open_stories),
        ] {
            if let Some(v) = v {
                q.insert(k.into(), v.into());
            }
        }
        Value::Object(q)
    }
}

fn send(conn: &Conn, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    let url = format!("{}{path}", conn.url.trim_end_matches('/'));
    let mut req = Client::new().request(method.clone(), &url);
    match &conn.admin_token {
        Some(t) => req = req.bearer_auth(t),
        None => anyhow::bail!(
            "no admin token: pass --admin-token or set STORYLINE_ADMIN_TOKEN (`storyline tenants new-admin-token` makes one)"
        ),
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp: Response = req.send().map_err(|e| {
        anyhow::anyhow!("{method} {url}: {e} (is `storyline run` listening there? --url)")
    })?;
    let status = resp.status();
    let v: Value = resp.json().unwrap_or(Value::Null);
    if !status.is_success() {
        let why = v["error"].as_str().unwrap_or("no reason given");
        anyhow::bail!("{method} {url}: {status}: {why}");
    }
    Ok(v)
}

fn print_tenant(t: &Value) {
    let quotas = match t["quotas"].as_object() {
        Some(q) if !q.is_empty() => q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "unlimited".into(),
    };
    println!(
        "{:<24} {:<7} tokens={} created={} quotas: {quotas}",
        t["id"].as_str().unwrap_or("?"),
        t["state"].as_str().unwrap_or("?"),
        t["tokens"],
        t["created"].as_str().unwrap_or("?"),
    );
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Create { id, quotas, conn } => {
            let v = send(
                &conn,
                Method::POST,
                "/v1/tenants",
                Some(serde_json::json!({"id": id, "quotas": quotas.json()})),
            )?;
            print_tenant(&v["tenant"]);
            println!("token: {}", v["token"].as_str().unwrap_or(""));
            eprintln!("(shown once; send it as `Authorization: Bearer <token>`)");
        }
        Command::List { conn } => {
            let v = send(&conn, Method::GET, "/v1/tenants", None)?;
            for t in v["tenants"].as_array().into_iter().flatten() {
                print_tenant(t);
            }
        }
        Command::Show { id, conn } => {
            print_tenant(&send(
                &conn,
                Method::GET,
                &format!("/v1/tenants/{id}"),
                None,
            )?);
        }
        Command::RotateToken { id, conn } => {
            let v = send(
                &conn,
                Method::POST,
                &format!("/v1/tenants/{id}/token"),
                None,
            )?;
            println!("token: {}", v["token"].as_str().unwrap_or(""));
            eprintln!("(every earlier token of {id} is revoked)");
        }
        Command::SetQuotas { id, quotas, conn } => {
            let path = format!("/v1/tenants/{id}/quotas");
            print_tenant(&send(&conn, Method::PUT, &path, Some(quotas.json()))?);
        }
        Command::Delete { id, yes, conn } => {
            if !yes {
                anyhow::bail!("deleting {id} removes all of its data for good: add --yes");
            }
            let v = send(&conn, Method::DELETE, &format!("/v1/tenants/{id}"), None)?;
            println!("deleted {id} ({} events)", v["events"]);
        }
        Command::History { id, limit, conn } => {
            let path = format!("/v1/tenants/{id}/history?limit={limit}");
            let v = send(&conn, Method::GET, &path, None)?;
            for e in v["history"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<15} {}",
                    e["at"].as_str().unwrap_or("?"),
                    e["kind"].as_str().unwrap_or("?"),
                    e["detail"].as_str().unwrap_or("")
                );
            }
        }
        Command::NewAdminToken => {
            let token = storyline_server::tenants::registry::new_token("admin");
            println!("token:  {token}");
            println!(
                "sha256: {}",
                storyline_server::tenants::registry::hash_token(&token)
            );
            eprintln!("put the sha256 in [tenants] admin_token_sha256; keep the token secret");
        }
    }
    Ok(())
}
