//! Writes a run to a directory: `cargo run -p storyline-generate --example dump -- DIR [flags]`.
use clap::Parser;

#[derive(Parser)]
struct Args {
    dir: std::path::PathBuf,
    #[command(flatten)]
    cfg: storyline_generate::GenConfig,
    #[arg(long)]
    progress: bool,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let t = std::time::Instant::now();
    let sum = storyline_generate::write_dir(&a.cfg, &a.dir, a.progress)?;
    let secs = t.elapsed().as_secs_f64();
    println!("{sum}");
    println!("{secs:.2} s, {:.0} events/s", sum.events as f64 / secs);
    Ok(())
}
