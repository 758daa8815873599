//! `storyline bench replay`: the end-to-end replay benchmark of issue 2 as one command. Each run is a
//! `storyline replay` child process, timed from its start until it is reaped, so the figures include what
//! a user waits for and a profile of the replay's own clock leaves out (removing the store, the kernel
//! freeing the process's memory). CPU time and peak memory come from the reaped child's `rusage`.
//!
//! On a shared VM the same binary's wall time moves by a quarter within an hour, so a change is measured
//! against a baseline in the same set of runs (`--baseline`), the two alternating run by run.

use super::median;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Input files, as `storyline replay` takes them (e.g. `storyline generate --events 1000000` output).
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// Runs of each build; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Another `storyline` binary (e.g. an earlier release build copied aside) run in alternation with
    /// this one, run for run: on a noisy machine only builds measured in the same set can be compared.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Pause before each run, after `sync`, so one run's writeback does not land in the next.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pause: Duration,
    /// Where the runs write their stories (each run's file is removed after it). Default: a temporary
    /// directory.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Arguments for every `storyline replay`, after `--` (e.g. `-- --partitions 2`).
    #[arg(last = true)]
    replay_args: Vec<String>,
}

/// One reaped replay.
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Run {
    wall_s: f64,
    user_s: f64,
    sys_s: f64,
    peak_rss_mb: f64,
    events: u64,
    versions: u64,
}

pub fn run(a: ReplayArgs) -> anyhow::Result<()> {
    let current = std::env::current_exe().context("finding this binary's path")?;
    let mut builds = vec![("current", current)];
    if let Some(b) = &a.baseline {
        anyhow::ensure!(
            b.is_file(),
            "--baseline {}: no such file; give the path of another storyline binary",
            b.display()
        );
        builds.push(("baseline", b.clone()));
    }
    let tmp;
    let work = match &a.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating --work-dir {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("creating a work directory")?;
            tmp.path().to_path_buf()
        }
    };
    let runs = a.runs.max(1);
    let bar = if super::super::progress_wanted() {
        indicatif::ProgressBar::new((runs * builds.len()) as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} replay runs [{bar:30}] {pos}/{len} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); builds.len()];
    for r in 0..runs {
        // Which build goes first alternates, so neither always runs in the same place of a pair.
        for i in 0..builds.len() {
            let i = if r % 2 == 0 { i } else { builds.len() - 1 - i };
            let (label, bin) = &builds[i];
            let run = run_once(bin, &a, &work, r)
                .with_context(|| format!("run {} of {label} ({})", r + 1, bin.display()))?;
            bar.set_message(format!("{label}: {:.2} s", run.wall_s));
            bar.inc(1);
            if !bar.is_hidden() {
                // Kept above the bar, so a long set shows every run as it goes.
                bar.println(format!("{label} run {}: {:.2} s", r + 1, run.wall_s));
            }
            results[i].push(run);
        }
    }
    bar.finish_and_clear();
    let summaries: Vec<Summary> = builds
        .iter()
        .zip(&results)
        .map(|((label, bin), runs)| Summary::of(label, bin, runs))
        .collect();
    let pairs = (results.len() == 2).then(|| Pairs::of(&results[0], &results[1]));
    if a.json {
        let out = serde_json::json!({ "builds": summaries, "pairs": pairs });
        println!("{out}");
    } else {
        print_table(&summaries, pairs.as_ref());
    }
    Ok(())
}

fn run_once(bin: &Path, a: &ReplayArgs, work: &Path, r: usize) -> anyhow::Result<Run> {
    let output = work.join(format!("stories-{r}.ndjson"));
    let log = work.join("replay.log");
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    std::thread::sleep(a.pause);
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let started = Instant::now();
    let child = Command::new(bin)
        .arg("replay")
        .arg("--input")
        .args(&a.input)
        .arg("--output")
        .arg(&output)
        .args(&a.replay_args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {} replay", bin.display()))?;
    let (status, usage) = reap(child.id() as libc::pid_t)?;
    let wall_s = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&output);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n");
    anyhow::ensure!(
        status == 0,
        "the replay {}; its last lines:\n{tail}",
        how_it_ended(status)
    );
    let (events, versions) = summary_counts(&text).with_context(|| {
        format!("the replay printed no `replayed N events ... into V story versions` line:\n{tail}")
    })?;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        wall_s,
        user_s: secs(usage.ru_utime),
        sys_s: secs(usage.ru_stime),
        // Linux reports `ru_maxrss` in KiB.
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        events,
        versions,
    })
}

/// Waits for the child and returns its wait status and resource usage. `std::process::Child::wait` gives
/// no `rusage`, and `getrusage(RUSAGE_CHILDREN)` gives the largest peak of all children so far, not this
/// one's: hence `wait4`.
fn reap(pid: libc::pid_t) -> anyhow::Result<(i32, libc::rusage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the pid we started and have not waited for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; the pid is our own child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for the replay");
        }
    }
}

/// A failed child's wait status in words.
fn how_it_ended(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("failed with exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("ended with wait status {status}")
    }
}

/// Events and story versions from the replay's closing line.
fn summary_counts(log: &str) -> Option<(u64, u64)> {
    let line = log.lines().rev().find(|l| l.starts_with("replayed "))?;
    let number_after = |marker: &str| -> Option<u64> {
        let rest = &line[line.find(marker)? + marker.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some((number_after("replayed ")?, number_after(" into ")?))
}

#[derive(Debug, serde::Serialize)]
struct Summary {
    build: String,
    binary: String,
    runs: Vec<Run>,
    median_wall_s: f64,
    min_wall_s: f64,
    max_wall_s: f64,
    /// Events over the median wall time.
    events_per_s: f64,
    /// Events over the median CPU time (user + system): what one core does.
    events_per_cpu_s: f64,
    median_peak_rss_mb: f64,
}

impl Summary {
    fn of(label: &str, bin: &Path, runs: &[Run]) -> Summary {
        let mut walls: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
        let wall = median(&mut walls);
        let cpu = median(&mut runs.iter().map(|r| r.user_s + r.sys_s).collect::<Vec<_>>());
        let events = runs.first().map_or(0, |r| r.events) as f64;
        Summary {
            build: label.to_string(),
            binary: bin.display().to_string(),
            runs: runs.to_vec(),
            median_wall_s: wall,
            min_wall_s: walls.iter().copied().fold(f64::INFINITY, f64::min),
            max_wall_s: walls.iter().copied().fold(0.0, f64::max),
            events_per_s: events / wall,
            events_per_cpu_s: events / cpu,
            median_peak_rss_mb: median(&mut runs.iter().map(|r| r.peak_rss_mb).collect::<Vec<_>>()),
        }
    }
}

/// This build against the baseline, run for run.
#[derive(Debug, serde::Serialize)]
struct Pairs {
    pairs: usize,
    /// Pairs in which this build's wall time was the shorter.
    current_faster_in: usize,
    /// Median over the pairs of this build's wall time divided by the baseline's.
    median_wall_ratio: f64,
}

impl Pairs {
    fn of(current: &[Run], baseline: &[Run]) -> Pairs {
        let mut ratios: Vec<f64> = current
            .iter()
            .zip(baseline)
            .map(|(c, b)| c.wall_s / b.wall_s)
            .collect();
        Pairs {
            pairs: ratios.len(),
            current_faster_in: ratios.iter().filter(|r| **r < 1.0).count(),
            median_wall_ratio: median(&mut ratios),
        }
    }
}

fn print_table(summaries: &[Summary], pairs: Option<&Pairs>) {
    println!(
        "{:<9} {:>4} {:>10} {:>15} {:>10} {:>16} {:>15}",
        "build", "runs", "median s", "min–max s", "events/s", "events/CPU-s", "peak RSS MB"
    );
    for s in summaries {
        println!(
            "{:<9} {:>4} {:>10.2} {:>15} {:>10.0} {:>16.0} {:>15.0}",
            s.build,
            s.runs.len(),
            s.median_wall_s,
            format!("{:.2}–{:.2}", s.min_wall_s, s.max_wall_s),
            s.events_per_s,
            s.events_per_cpu_s,
            s.median_peak_rss_mb
        );
    }
    if let Some(p) = pairs {
        println!(
            "current vs baseline: faster in {} of {} pairs, median wall ratio {:.3}",
            p.current_faster_in, p.pairs, p.median_wall_ratio
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_line_gives_events_and_versions() {
        let log = "some warning\nreplayed 1000000 events (0 rejected, kept in dead letters) into 216145 story \
                   versions in 5.53s (180876 events/s; ingest 4.27s) → /tmp/x\n";
        assert_eq!(summary_counts(log), Some((1_000_000, 216_145)));
        assert_eq!(summary_counts("replayed nothing\n"), None);
        assert_eq!(summary_counts(""), None);
    }

    #[test]
    fn a_failed_run_says_how_it_ended() {
        // Linux's encoding: the exit code in the second byte, a terminating signal in the low bits.
        assert_eq!(how_it_ended(1 << 8), "failed with exit code 1");
        assert_eq!(how_it_ended(9), "was killed by signal 9");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn pairs_count_the_runs_the_current_build_won() {
        let run = |wall_s| Run {
            wall_s,
            user_s: 1.0,
            sys_s: 0.5,
            peak_rss_mb: 10.0,
            events: 100,
            versions: 10,
        };
        let p = Pairs::of(
            &[run(1.0), run(3.0), run(2.0)],
            &[run(2.0), run(2.0), run(4.0)],
        );
        assert_eq!((p.pairs, p.current_faster_in), (3, 2));
        assert_eq!(p.median_wall_ratio, 0.5);
        let s = Summary::of("current", Path::new("x"), &[run(1.0), run(3.0), run(2.0)]);
        assert_eq!(
            (s.median_wall_s, s.min_wall_s, s.max_wall_s),
            (2.0, 1.0, 3.0)
        );
        assert_eq!(s.events_per_s, 50.0);
        assert!((s.events_per_cpu_s - 100.0 / 1.5).abs() < 1e-9);
    }
}
