//! `storyline`: fuses the events many security sensors report about the same network sessions into one
//! story per session.

mod alloc;
mod cmd;

// Events are parsed, encoded and decoded through many small allocations; mimalloc measured faster than the
// system allocator on `storyline replay` (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: alloc::MiMalloc = alloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "storyline",
    version,
    about = "Fuse firewall, endpoint, DNS, proxy, flow and IDS events into one story per network session",
    long_about = "Storyline ingests events from many sensors, normalizes them to Elastic Common Schema, stores them \
durably (the store is also the queue) and fuses the events that describe the same session into stories.\n\n\
Start with `storyline demo` to see stories from live synthetic traffic, then `storyline generate` and \
`storyline replay` to run the whole pipeline over a file, and `storyline run --config storyline.toml` for the service."
)]
struct Cli {
    /// Log as JSON lines instead of text (logs go to stderr; filter with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write synthetic multi-sensor traffic and its ground truth to a directory.
    Generate(cmd::generate::Args),
    /// Run the whole pipeline (durable store, workers, correlation, sink) over recorded input, as fast as it goes.
    Replay(cmd::replay::Args),
    /// Run the service: HTTP ingest, workers, sinks.
    Run(cmd::run::Args),
    /// The service on the embedded store, fed live generated traffic, printing stories as they are published.
    Demo(cmd::demo::Args),
    /// Inspect input that could not be accepted.
    #[command(subcommand)]
    DeadLetters(cmd::dead_letters::Command),
    /// Delivery sinks: backlogs, dead letters, re-drive (`[[sinks]]`, docs/sinks.md).
    #[command(subcommand)]
    Sinks(cmd::sinks::Command),
    /// Tenants of a running service: create, list, rotate tokens, set quotas, delete, history.
    #[command(subcommand)]
    Tenants(cmd::tenants::Command),
    /// Benchmarks of the whole service in one process (docs/benchmarks.md).
    #[command(subcommand)]
    Bench(cmd::bench::Command),
    /// Validate a config file and print the effective configuration.
    Check(cmd::check::Args),
    /// Score stories against ground truth: pairwise precision, recall, F1 and exact stories.
    Eval(cmd::eval::Args),
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let result = match cli.command {
        Command::Generate(a) => cmd::generate::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::DeadLetters(c) => cmd::dead_letters::run(c),
        Command::Sinks(c) => cmd::sinks::run(c),
        Command::Tenants(c) => cmd::tenants::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Check(a) => cmd::check::run(a),
        Command::Eval(a) => cmd::eval::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
