use std::path::PathBuf;
use std::sync::Arc;
use storyline_server::config::StoreKind;
use storyline_store::embedded::{Durability, EmbeddedStore};
use storyline_store::Store;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List dead letters, oldest first: when, where from, which line, why, and the start of the record.
    List(ListArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Read the store (data dir or PostgreSQL) and tenant from this config file.
    #[arg(long, conflicts_with = "data_dir")]
    config: Option<PathBuf>,
    /// The store's data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "default")]
    tenant: String,
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Only those after this id (for paging).
    #[arg(long)]
    after: Option<u64>,
    /// One JSON object per line, with the raw record in full (base64 where it is not UTF-8).
    #[arg(long)]
    json: bool,
}

fn open_embedded(data_dir: &std::path::Path) -> anyhow::Result<Arc<dyn Store>> {
    if !data_dir.exists() {
        anyhow::bail!("{}: no such data directory", data_dir.display());
    }
    let store = EmbeddedStore::open(data_dir, Durability::Fsync).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (is a storyline process using it? stop it first)",
            data_dir.display()
        )
    })?;
    Ok(Arc::new(store))
}

pub fn run(c: Command) -> anyhow::Result<()> {
    let Command::List(a) = c;
    let (store, tenant) = match (&a.config, &a.data_dir) {
        (Some(p), _) => {
            let cfg = storyline_server::Config::load(p)?;
            // The store the config names: the data dir, or the PostgreSQL schema (which running processes
            // may keep using meanwhile).
            let store = match cfg.store.kind {
                StoreKind::Embedded => open_embedded(&cfg.data_dir)?,
                StoreKind::Postgres => storyline_server::store::open(&cfg.store, &cfg.data_dir)?,
            };
            (store, cfg.tenant)
        }
        (None, Some(d)) => (open_embedded(d)?, a.tenant.clone()),
        (None, None) => anyhow::bail!("say where the store is: --data-dir DIR or --config FILE"),
    };
    let letters = store.dead_letters(&tenant, a.after, a.limit)?;
    for d in &letters {
        if a.json {
            let raw = match std::str::from_utf8(&d.raw) {
                Ok(s) => serde_json::json!({ "text": s }),
                Err(_) => {
                    serde_json::json!({ "hex": d.raw.iter().map(|b| format!("{b:02x}")).collect::<String>() })
                }
            };
            println!(
                "{}",
                serde_json::json!({
                    "id": d.id, "received": d.received, "source": d.source, "line": d.line,
                    "format": d.format, "code": d.code, "reason": d.reason, "raw": raw,
                })
            );
        } else {
            let text = String::from_utf8_lossy(&d.raw);
            let excerpt: String = text.chars().take(120).collect();
            println!(
                "{}  {}  {}{}  [{}] {}\n    {}{}",
                d.id,
                d.received,
                d.source,
                d.line.map(|l| format!(" line {l}")).unwrap_or_default(),
                d.code,
                d.reason,
                excerpt.escape_debug(),
                if text.chars().count() > 120 {
                    "…"
                } else {
                    ""
                }
            );
        }
    }
    if letters.is_empty() {
        eprintln!("no dead letters for tenant {tenant}");
    }
    Ok(())
}
