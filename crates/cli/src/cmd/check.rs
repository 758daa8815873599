use std::path::PathBuf;
use storyline_server::Config;

#[derive(clap::Args)]
pub struct Args {
    /// The config file to validate.
    #[arg(long)]
    config: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = Config::load(&a.config)?;
    println!(
        "# {} is valid; effective configuration:",
        a.config.display()
    );
    let mut shown = cfg.clone();
    shown.store.url = cfg.store.redacted_url();
    print!("{}", toml::to_string_pretty(&shown)?);
    Ok(())
}
