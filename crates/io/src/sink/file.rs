//! NDJSON files with rotation by size. The current file is `<dir>/<prefix>.ndjson`; full files are renamed
//! to `<prefix>-<UTC time>-<n>.ndjson` and the oldest beyond `keep` are deleted.

use super::{story_line, StorySink};
use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use storyline_model::Story;

pub struct RotatingFileSink {
    inner: Mutex<Inner>,
}

struct Inner {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
    keep: usize,
    sync: bool,
    rotations: u64,
}

impl RotatingFileSink {
    /// `path` is the live file. `max_bytes` 0 disables rotation; `sync` fsyncs after every publish (what
    /// zero loss needs; turn off only for throwaway output).
    pub fn open(path: &Path, max_bytes: u64, keep: usize, sync: bool) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = open_repaired(path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            inner: Mutex::new(Inner {
                path: path.to_path_buf(),
                file,
                written,
                max_bytes,
                keep,
                sync,
                rotations: 0,
            }),
        })
    }
}

/// Opens for append, first cutting a partial last line left by a crash mid-write: that line's stories are
/// re-published after restart, because the offset that covered them was never committed.
fn open_repaired(path: &Path) -> anyhow::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening story file {}", path.display()))?;
    let len = file.metadata()?.len();
    if len > 0 {
        let tail = len.min(1 << 20);
        file.seek(SeekFrom::Start(len - tail))?;
        let mut buf = vec![0; tail as usize];
        file.read_exact(&mut buf)?;
        if buf.last() != Some(&b'\n') {
            let keep = match buf.iter().rposition(|b| *b == b'\n') {
                Some(i) => len - tail + i as u64 + 1,
                None if tail == len => 0,
                None => anyhow::bail!(
                    "{}: last line is over 1 MiB and unterminated; move the file away",
                    path.display()
                ),
            };
            file.set_len(keep)?;
            tracing::warn!(path = %path.display(), cut = len - keep, "cut a partial last line left by a crash");
        }
    }
    Ok(file)
}

impl Inner {
    fn rotate(&mut self) -> anyhow::Result<()> {
        let stem = self
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("stories")
            .to_string();
        let now = time::OffsetDateTime::now_utc();
        self.rotations += 1;
        let name = format!(
            "{stem}-{:04}{:02}{:02}T{:02}{:02}{:02}-{}.ndjson",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            self.rotations
        );
        let rotated = self.path.with_file_name(name);
        self.file.sync_all()?;
        std::fs::rename(&self.path, &rotated)?;
        self.file = open_repaired(&self.path)?;
        self.written = 0;
        self.prune(&stem)
    }

    fn prune(&self, stem: &str) -> anyhow::Result<()> {
        let Some(dir) = self.path.parent() else {
            return Ok(());
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let mut rotated: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{stem}-")) && n.ends_with(".ndjson"))
            })
            .collect();
        rotated.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        while rotated.len() > self.keep {
            let old = rotated.remove(0);
            std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        Ok(())
    }
}

impl StorySink for RotatingFileSink {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        if stories.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(stories.len() * 512);
        for s in stories {
            story_line(s, &mut buf);
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.max_bytes > 0
            && inner.written > 0
            && inner.written + buf.len() as u64 > inner.max_bytes
        {
            inner.rotate()?;
        }
        inner.file.write_all(&buf)?;
        inner.written += buf.len() as u64;
        if inner.sync {
            inner.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storyline_model::StoryId;

    fn story(n: u128) -> Story {
        Story {
            story_id: StoryId(n),
            version: 1,
            tenant: "t".into(),
            event_ids: vec!["e".into()],
            ..Default::default()
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stories.ndjson");
        let sink = RotatingFileSink::open(&path, 300, 2, false).unwrap();
        for i in 0..20 {
            sink.publish(&[story(i)]).unwrap();
        }
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 3, "live file + 2 kept: {files:?}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.len() <= 300 || text.lines().count() == 1);
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["tenant"], "t");
            }
        }
    }

    #[test]
    fn a_partial_line_from_a_crash_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.ndjson");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":").unwrap();
        let sink = RotatingFileSink::open(&path, 0, 1, true).unwrap();
        sink.publish(&[story(1)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "{\"a\":1}");
        assert!(serde_json::from_str::<serde_json::Value>(lines[1]).is_ok());
    }
}
