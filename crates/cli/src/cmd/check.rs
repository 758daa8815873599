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
    print!("{}", toml::to_string_pretty(&cfg)?);
    Ok(())
}
