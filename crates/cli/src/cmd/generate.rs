use std::path::PathBuf;
use storyline_generate::GenConfig;

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  storyline generate --events 100000 --seed 7 --out /tmp/traffic --skew 5s --reversed 0.2 --nat 0.3 --late 0.1 --max-late 8m\n\
Writes DIR/events.ndjson (envelope lines, in arrival order) and DIR/truth.ndjson (each event's id and true story)."
)]
pub struct Args {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    cfg: GenConfig,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let summary = storyline_generate::write_dir(&a.cfg, &a.out, super::progress_wanted())?;
    eprintln!("{summary}");
    Ok(())
}
