use std::path::PathBuf;
use std::sync::Arc;
use storyline_pipeline::ingest::replay::{LetterStates, ReplayOptions, ReplaySummary};
use storyline_pipeline::ingest::split_dead_letter_source;
use storyline_pipeline::Ingestor;
use storyline_server::config::StoreKind;
use storyline_store::embedded::{Durability, EmbeddedStore};
use storyline_store::Store;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List dead letters, oldest first: when, where from, which line, why, and the start of the record.
    /// Letters a replay stored are left out (see --all); the others show their latest reason.
    List(ListArgs),
    /// Parse dead-lettered records again with the formats and source mappings in force now (after an
    /// upgrade, or a config fix), store those that parse, and mark their letters replayed.
    #[command(
        after_help = "Examples:\n  storyline dead-letters replay --config storyline.toml --dry-run\n  storyline dead-letters replay --config storyline.toml --code unknown_sensor\n  storyline dead-letters replay --config storyline.toml --code missing_field --format suricata\n\nWith the embedded store the service must be stopped (it holds the data directory); with PostgreSQL it\nmay keep running. Replayed letters stay in the store, marked replayed: `dead-letters list --all` shows\nthem. Replaying again is safe: done letters are skipped, and a record stored twice keeps its event id."
    )]
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The config of the service whose store holds the letters (data dir or PostgreSQL, tenant, sources).
    #[arg(long)]
    config: PathBuf,
    /// Tenant (default: the config's `tenant`).
    #[arg(long)]
    tenant: Option<String>,
    /// Only letters with this code (e.g. unknown_format, unknown_sensor, missing_field).
    #[arg(long)]
    code: Option<String>,
    /// Parse the records as this format instead of the one they were received as (for envelope lines:
    /// instead of the envelope's "format").
    #[arg(long)]
    format: Option<String>,
    /// Sensor of plain records whose letter does not name one (letters written before Storyline kept it).
    #[arg(long)]
    sensor: Option<String>,
    /// Only letters after this id.
    #[arg(long)]
    after: Option<u64>,
    /// Try at most this many letters.
    #[arg(long)]
    limit: Option<usize>,
    /// Parse and report, store nothing.
    #[arg(long)]
    dry_run: bool,
    /// The summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
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
    /// One JSON object per line, with the raw record in full (hex where it is not UTF-8).
    #[arg(long)]
    json: bool,
    /// Also the letters a replay stored (marked replayed).
    #[arg(long)]
    all: bool,
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

/// The store the config names: the data dir, or the PostgreSQL schema (which running processes may keep
/// using meanwhile).
fn open_configured(cfg: &storyline_server::Config) -> anyhow::Result<Arc<dyn Store>> {
    match cfg.store.kind {
        StoreKind::Embedded => open_embedded(&cfg.data_dir),
        StoreKind::Postgres | StoreKind::Scylla => {
            storyline_server::store::open(&cfg.store, &cfg.data_dir)
        }
    }
}

pub fn run(c: Command) -> anyhow::Result<()> {
    let a = match c {
        Command::List(a) => a,
        Command::Replay(r) => return replay(r),
    };
    let (store, tenant) = match (&a.config, &a.data_dir) {
        (Some(p), _) => {
            let cfg = storyline_server::Config::load(p)?;
            (open_configured(&cfg)?, cfg.tenant)
        }
        (None, Some(d)) => (open_embedded(d)?, a.tenant.clone()),
        (None, None) => anyhow::bail!("say where the store is: --data-dir DIR or --config FILE"),
    };
    let states = LetterStates::load(&*store, &tenant)?;
    // Pages until `limit` letters to show are found: replayed ones do not count.
    let mut letters = Vec::new();
    let mut after = a.after;
    while letters.len() < a.limit {
        let page = store.dead_letters(&tenant, after, a.limit.clamp(1, 1000))?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for d in page {
            let replayed = states.is_replayed(d.id);
            if replayed && !a.all {
                continue;
            }
            if letters.len() < a.limit {
                letters.push((states.latest(d), replayed));
            }
        }
    }
    for (d, replayed) in &letters {
        let (_, sensor) = split_dead_letter_source(&d.source);
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
                    "format": d.format, "sensor": sensor, "code": d.code, "reason": d.reason,
                    "replayed": replayed, "raw": raw,
                })
            );
        } else {
            let text = String::from_utf8_lossy(&d.raw);
            let excerpt: String = text.chars().take(120).collect();
            println!(
                "{}{}  {}  {}{}  [{}] {}\n    {}{}",
                d.id,
                if *replayed { " (replayed)" } else { "" },
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

fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    let cfg = storyline_server::Config::load(&a.config)?;
    let tenant = a.tenant.clone().unwrap_or_else(|| cfg.tenant.clone());
    if let Some(f) = &a.format {
        if !storyline_parse::FORMATS.contains(&f.as_str()) {
            anyhow::bail!(
                "--format {f:?} is not a known format; known: {}",
                storyline_parse::FORMATS.join(", ")
            );
        }
    }
    let store = open_configured(&cfg)?;
    let limits = storyline_parse::Limits {
        max_record_bytes: cfg.limits.max_record_bytes,
    };
    let opts = ReplayOptions {
        code: a.code.clone(),
        format: a.format.clone(),
        sensor: a.sensor.clone(),
        after: a.after,
        limit: a.limit,
        dry_run: a.dry_run,
    };
    let bar = if super::progress_wanted() {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(200));
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut make_ingestor = || Ingestor::new(store.clone(), &tenant, &cfg.pipeline, limits);
    let summary = storyline_pipeline::ingest::replay::replay(
        &store,
        &tenant,
        &mut make_ingestor,
        &limits,
        &cfg.sources,
        &opts,
        &mut |s: &ReplaySummary| {
            bar.set_message(format!(
                "{} tried, {} replayed, {} still failing",
                s.tried,
                s.replayed,
                s.still_failing.values().sum::<u64>()
            ))
        },
    )?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string(&summary)?);
        return Ok(());
    }
    let failing: u64 = summary.still_failing.values().sum();
    println!(
        "{}{} replayed, {failing} still failing ({} tried{})",
        if a.dry_run { "dry run: " } else { "" },
        summary.replayed,
        summary.tried,
        if summary.already_replayed > 0 {
            format!(", {} replayed before", summary.already_replayed)
        } else {
            String::new()
        }
    );
    for (code, n) in &summary.still_failing {
        println!("  {code}: {n}");
    }
    for f in &summary.failing_examples {
        println!("  {}  [{}] {}", f.id, f.code, f.reason);
    }
    if failing > summary.failing_examples.len() as u64 {
        println!(
            "  … and {} more: storyline dead-letters list --config {}",
            failing - summary.failing_examples.len() as u64,
            a.config.display()
        );
    }
    Ok(())
}
