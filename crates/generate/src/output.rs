//! Writes a generation run to a directory: the envelopes a collector would receive, in arrival order,
//! and the ground truth that scores Storyline's stories against the real sessions.

use crate::text::push_json_str;
use crate::{GenConfig, Generator};
use anyhow::Context;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub events: u64,
    pub stories: u64,
    pub late: u64,
    /// Size of `events.ndjson`.
    pub bytes: u64,
    pub by_format: BTreeMap<&'static str, u64>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events in {} stories ({} late), {} bytes;",
            self.events, self.stories, self.late, self.bytes
        )?;
        for (format, n) in &self.by_format {
            write!(f, " {format}={n}")?;
        }
        Ok(())
    }
}

pub fn write_dir(cfg: &GenConfig, dir: &Path, progress: bool) -> anyhow::Result<Summary> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let open = |name: &str| -> anyhow::Result<BufWriter<File>> {
        let path = dir.join(name);
        let f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    };
    let mut events = open("events.ndjson")?;
    let mut truth = open("truth.ndjson")?;

    let bar = if progress {
        let b = indicatif::ProgressBar::new(cfg.events);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} events ({per_sec}, eta {eta})",
            )
            .expect("valid template"),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };

    let mut sum = Summary::default();
    let mut gen = Generator::new(cfg);
    let mut line = String::with_capacity(256);
    for g in gen.by_ref() {
        events.write_all(g.envelope.as_bytes())?;
        events.write_all(b"\n")?;
        sum.bytes += g.envelope.len() as u64 + 1;

        line.clear();
        line.push_str("{\"event_id\":");
        push_json_str(&mut line, &g.event_id);
        line.push_str(",\"story\":");
        push_json_str(&mut line, &g.story);
        line.push_str(",\"sensor\":");
        push_json_str(&mut line, &g.sensor);
        line.push_str(",\"format\":");
        push_json_str(&mut line, g.format);
        line.push_str("}\n");
        truth.write_all(line.as_bytes())?;

        sum.events += 1;
        sum.late += u64::from(g.late);
        *sum.by_format.entry(g.format).or_default() += 1;
        if sum.events % 4096 == 0 {
            bar.set_position(sum.events);
        }
    }
    sum.stories = gen.stories();
    events.flush()?;
    truth.flush()?;
    bar.finish_and_clear();
    Ok(sum)
}
