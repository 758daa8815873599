//! `storyline sinks`: the delivery sinks' backlogs and dead letters (`[[sinks]]`, docs/sinks.md).

use std::path::{Path, PathBuf};
use storyline_io::sink::backlog::{self, Backlog, DirStatus};
use storyline_io::sink::fanout::sink_dir;
use storyline_io::SinkConfig;
use storyline_model::Timestamp;

#[derive(clap::Subcommand)]
pub enum Command {
    /// The configured sinks: backlog size and age, dead letters, re-drives waiting, running or not.
    List(ListArgs),
    /// A sink's dead letters, oldest first: when, why, how many story versions, which.
    DeadLetters(SinkArgs),
    /// Move a sink's dead letters back into its backlog, to be delivered again. With the service running
    /// it appends them within a second; otherwise they are appended now and delivered at its next start.
    Redrive(SinkArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// The service's config file (`data_dir` and `[[sinks]]`).
    #[arg(long)]
    config: PathBuf,
    /// One JSON object per sink.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct SinkArgs {
    #[arg(long)]
    config: PathBuf,
    /// The sink's `name`.
    #[arg(long)]
    sink: String,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::List(a) => list(a),
        Command::DeadLetters(a) => dead_letters(a),
        Command::Redrive(a) => redrive(a),
    }
}

fn load(config: &Path) -> anyhow::Result<storyline_server::Config> {
    storyline_server::Config::load(config)
}

fn find<'a>(
    cfg: &'a storyline_server::Config,
    config: &Path,
    name: &str,
) -> anyhow::Result<&'a SinkConfig> {
    cfg.sinks.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = cfg.sinks.iter().map(|s| s.name.as_str()).collect();
        anyhow::anyhow!(
            "{}: no sink named {name:?}; configured: {}",
            config.display(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )
    })
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn age(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => {
            let secs = ((Timestamp::now().as_millis() - ms).max(0) / 1000) as u64;
            humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
        }
        None => "-".into(),
    }
}

fn list(a: ListArgs) -> anyhow::Result<()> {
    let cfg = load(&a.config)?;
    if cfg.sinks.is_empty() {
        eprintln!(
            "{}: no [[sinks]]: stories go to [output] ({}), written synchronously, with no backlog",
            a.config.display(),
            toml::to_string(&cfg.output)?.trim().replace('\n', ", ")
        );
        return Ok(());
    }
    if !a.json {
        println!(
            "{:<20} {:<14} {:<8} {:>12} {:>12} {:>14} {:>8}  state",
            "sink", "kind", "encoding", "backlog", "oldest", "dead letters", "redrive"
        );
    }
    for s in &cfg.sinks {
        let dir = sink_dir(&cfg.data_dir, &s.name);
        let st = if dir.exists() {
            DirStatus::read(&dir)?
        } else {
            DirStatus::default()
        };
        let state = if st.locked { "running" } else { "stopped" };
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "sink": s.name, "kind": s.kind().name(), "encoding": s.encoding.name(),
                    "backlog_bytes": st.backlog_bytes, "backlog_limit": s.backlog_bytes,
                    "oldest": st.oldest_ms.map(|ms| Timestamp::from_millis(ms).to_rfc3339()),
                    "dead_letters": st.dead_letters, "dead_letter_stories": st.dead_letter_stories,
                    "redrive_pending": st.redrive_pending, "state": state, "dir": dir,
                })
            );
        } else {
            println!(
                "{:<20} {:<14} {:<8} {:>12} {:>12} {:>14} {:>8}  {state}",
                s.name,
                s.kind().name(),
                s.encoding.name(),
                human_bytes(st.backlog_bytes),
                age(st.oldest_ms),
                format!("{} ({} st.)", st.dead_letters, st.dead_letter_stories),
                st.redrive_pending,
            );
        }
    }
    Ok(())
}

fn dead_letters(a: SinkArgs) -> anyhow::Result<()> {
    let cfg = load(&a.config)?;
    find(&cfg, &a.config, &a.sink)?;
    let dir = sink_dir(&cfg.data_dir, &a.sink);
    let letters = backlog::dead_letters(&dir.join("dead"))?;
    for d in &letters {
        if a.json {
            println!("{}", serde_json::to_string(d)?);
        } else {
            println!(
                "{}  {}  [{}] {} story version(s), {} attempt(s): {}\n    {}{}",
                d.file,
                d.at,
                d.reason,
                d.stories,
                d.attempts,
                d.error,
                d.first_ids.join(" "),
                if d.stories as usize > d.first_ids.len() {
                    " …"
                } else {
                    ""
                }
            );
        }
    }
    if letters.is_empty() {
        eprintln!("no dead letters for sink {}", a.sink);
    } else if !a.json {
        eprintln!(
            "{} dead letter(s) in {}; `storyline sinks redrive --config {} --sink {}` sends them again",
            letters.len(),
            dir.join("dead").display(),
            a.config.display(),
            a.sink
        );
    }
    Ok(())
}

fn redrive(a: SinkArgs) -> anyhow::Result<()> {
    let cfg = load(&a.config)?;
    let sink = find(&cfg, &a.config, &a.sink)?;
    let dir = sink_dir(&cfg.data_dir, &a.sink);
    if !dir.exists() {
        eprintln!(
            "sink {} has no directory yet ({}): nothing to re-drive",
            a.sink,
            dir.display()
        );
        return Ok(());
    }
    let moved = backlog::request_redrive(&dir)?;
    if backlog::is_locked(&dir) {
        println!(
            "{moved} dead letter(s) handed to the running service; it appends them to the backlog of {} within a second",
            a.sink
        );
        return Ok(());
    }
    // Nobody delivers for this sink now: append to the backlog ourselves (under its lock).
    let b = Backlog::open(&dir, sink.backlog_bytes)?;
    let stories = b.import_redrive()?;
    let left = backlog::dead_letters(&dir.join("redrive"))?.len();
    println!(
        "{moved} dead letter(s), {stories} story version(s) appended to the backlog of {}; delivered when `storyline run` starts",
        a.sink
    );
    if left > 0 {
        anyhow::bail!(
            "{left} dead letter(s) did not fit in the backlog (backlog_bytes = {}); they stay in {} and are appended as the backlog drains",
            sink.backlog_bytes,
            dir.join("redrive").display()
        );
    }
    Ok(())
}
