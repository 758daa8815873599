//! Rotating files. The live file is `<dir>/<stem>.<ext>` (the configured path); a full or old file is
//! renamed to `<stem>-<UTC time>-<n>.<ext>` (gzipped to `….<ext>.gz` with `gzip`), and the oldest rotated
//! files beyond `keep` are deleted. Rotation is by size (`max_bytes`) and, optionally, by age
//! (`rotate_every`: checked when stories are written, so a quiet file rotates with its next write).
//!
//! Encodings: NDJSON (`story`, `ecs`, `ocsf`), CSV (a header line at the top of every file) and Avro
//! (every file is an object container file; each write appends a block).

use super::direct::{Appender, Staging};
use super::encode::{self, Encoding};
use super::{story_line, StorySink};
use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime};
use storyline_model::prefetch::for_each_prefetched;
use storyline_model::Story;

/// How a [`RotatingFileSink`] writes and rotates.
#[derive(Clone, Debug)]
pub struct FileOptions {
    /// Rotate before a write would take the file past this size; 0: never by size.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: usize,
    /// fsync after every write (what zero loss needs; turn off only for throwaway output).
    pub sync: bool,
    /// Rotate a file once it is this old.
    pub rotate_every: Option<Duration>,
    /// gzip rotated files.
    pub gzip: bool,
    pub encoding: Encoding,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            keep: 16,
            sync: true,
            rotate_every: None,
            gzip: false,
            encoding: Encoding::Story,
        }
    }
}

pub struct RotatingFileSink {
    inner: Mutex<Inner>,
}

struct Inner {
    path: PathBuf,
    file: File,
    written: u64,
    opts: FileOptions,
    opened_at: SystemTime,
    rotations: u64,
    /// Sync marker of the live Avro container file.
    avro_marker: Option<[u8; 16]>,
}

impl RotatingFileSink {
    /// `path` is the live file. `max_bytes` 0 disables rotation; `sync` fsyncs after every publish (what
    /// zero loss needs; turn off only for throwaway output).
    pub fn open(path: &Path, max_bytes: u64, keep: usize, sync: bool) -> anyhow::Result<Self> {
        Self::with_options(
            path,
            FileOptions {
                max_bytes,
                keep,
                sync,
                ..Default::default()
            },
        )
    }

    pub fn with_options(path: &Path, opts: FileOptions) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let avro = opts.encoding == Encoding::Avro;
        let file = if avro {
            OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening story file {}", path.display()))?
        } else {
            open_repaired(path)?
        };
        let written = file.metadata()?.len();
        let opened_at = file
            .metadata()
            .and_then(|m| m.created())
            .unwrap_or_else(|_| SystemTime::now());
        let mut inner = Inner {
            path: path.to_path_buf(),
            file,
            written,
            opts,
            opened_at,
            rotations: 0,
            avro_marker: None,
        };
        if avro && written > 0 {
            // An Avro file from an earlier run: start a fresh container rather than append to a file whose
            // last block may be torn.
            inner.rotate()?;
        }
        Ok(Self {
            inner: Mutex::new(inner),
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
    fn stem_ext(&self) -> (String, String) {
        let stem = self
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("stories")
            .to_string();
        let ext = self
            .path
            .extension()
            .and_then(|s| s.to_str())
            .unwrap_or("ndjson")
            .to_string();
        (stem, ext)
    }

    fn rotate(&mut self) -> anyhow::Result<()> {
        let (stem, ext) = self.stem_ext();
        let now = time::OffsetDateTime::now_utc();
        self.rotations += 1;
        let name = format!(
            "{stem}-{:04}{:02}{:02}T{:02}{:02}{:02}-{}.{ext}",
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
        self.file = if self.opts.encoding == Encoding::Avro {
            OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&self.path)?
        } else {
            open_repaired(&self.path)?
        };
        self.written = 0;
        self.avro_marker = None;
        self.opened_at = SystemTime::now();
        if self.opts.gzip {
            gzip_file(&rotated)?;
        }
        self.prune(&stem, &ext)
    }

    fn prune(&self, stem: &str, ext: &str) -> anyhow::Result<()> {
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
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&format!("{stem}-"))
                        && (n.ends_with(&format!(".{ext}")) || n.ends_with(&format!(".{ext}.gz")))
                })
            })
            .collect();
        rotated.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        while rotated.len() > self.opts.keep {
            let old = rotated.remove(0);
            std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        Ok(())
    }

    fn encode(&mut self, stories: &[Story]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(stories.len() * 512);
        match self.opts.encoding {
            Encoding::Avro => {
                buf = match self.avro_marker {
                    Some(m) => encode::avro::blocks(stories, m),
                    None => {
                        let b = encode::avro::container(stories);
                        self.avro_marker = Some(apache_avro::read_marker(&b));
                        b
                    }
                };
            }
            Encoding::Csv => {
                if self.written == 0 {
                    encode::csv::header(&mut buf);
                }
                for_each_prefetched(stories, |s| encode::csv::record(s, &mut buf));
            }
            e => for_each_prefetched(stories, |s| json_line(e, s, &mut buf)),
        }
        buf
    }
}

/// One story as a line of a JSON encoding (the story encoding has its own writer, faster than building a
/// `serde_json::Value`).
fn json_line(encoding: Encoding, story: &Story, buf: &mut Vec<u8>) {
    match encoding {
        Encoding::Story => story_line(story, buf),
        e => e.line(story, buf),
    }
}

/// Compresses a rotated file to `<name>.gz` (written aside, fsynced, renamed) and removes it.
fn gzip_file(path: &Path) -> anyhow::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".gz");
    let gz = path.with_file_name(&name);
    let tmp = path.with_file_name({
        let mut t = name.clone();
        t.push(".tmp");
        t
    });
    let mut input = File::open(path)?;
    let out = File::create(&tmp)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    std::io::copy(&mut input, &mut enc)?;
    let out = enc.finish()?;
    out.sync_all()?;
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(path)?;
    Ok(())
}

impl StorySink for RotatingFileSink {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        if stories.is_empty() {
            return Ok(());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let too_old = inner
            .opts
            .rotate_every
            .is_some_and(|every| inner.opened_at.elapsed().unwrap_or_default() >= every);
        if inner.written > 0 && too_old {
            inner.rotate()?;
        }
        let encoding = inner.opts.encoding;
        if stories.len() > PUBLISH_SLICE && inner.opts.max_bytes == 0 && encoding.is_json() {
            let lines = |s: &Story, buf: &mut Vec<u8>| json_line(encoding, s, buf);
            inner.written += write_in_two_threads(&inner.file, &inner.path, stories, &lines)?;
            if inner.opts.sync {
                inner.file.sync_data()?;
            }
            return Ok(());
        }
        // In slices: a catch-up publishes hundreds of thousands of versions, and encoding them all into one
        // buffer first cost more in fresh pages than the encoding itself. A file may so end between two
        // slices of one call, never inside a story.
        for slice in stories.chunks(PUBLISH_SLICE) {
            let mut buf = inner.encode(slice);
            if inner.opts.max_bytes > 0
                && inner.written > 0
                && inner.written + buf.len() as u64 > inner.opts.max_bytes
            {
                inner.rotate()?;
                // A new file: CSV wants its header, Avro its container header.
                buf = inner.encode(slice);
            }
            inner.file.write_all(&buf)?;
            inner.written += buf.len() as u64;
        }
        if inner.opts.sync {
            inner.file.sync_data()?;
        }
        Ok(())
    }
}

/// Story versions encoded and written at a time.
const PUBLISH_SLICE: usize = 4096;

/// Encodes and appends `stories` in slices, on this thread and a helper taking turns: each encodes its
/// next slice while the other writes. Encoding and writing cost about the same, so a catch-up's
/// publication (hundreds of thousands of versions at a replay's end) takes about half as long. Slices are
/// written in order, their aligned middle straight to the device ([`direct`](super::direct)). Returns
/// the bytes written.
fn write_in_two_threads(
    file: &File,
    path: &Path,
    stories: &[Story],
    encode: &(dyn Fn(&Story, &mut Vec<u8>) + Sync),
) -> std::io::Result<u64> {
    let slices: Vec<&[Story]> = stories.chunks(PUBLISH_SLICE).collect();
    struct Turn<'a> {
        /// The next slice to write; `usize::MAX` once either thread stopped early.
        next: usize,
        out: Appender<'a>,
    }
    let turn = Mutex::new(Turn {
        next: 0,
        out: Appender::new(file, path, true)?,
    });
    let turn_changed = Condvar::new();
    let pass_on = |next: usize| {
        turn.lock().unwrap_or_else(|p| p.into_inner()).next = next;
        turn_changed.notify_all();
    };
    let work = |first: usize| -> std::io::Result<u64> {
        // Whatever ends this thread early (an error, a panic) releases the other from waiting.
        struct Release<'a>(&'a dyn Fn(usize), bool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                if !self.1 {
                    (self.0)(usize::MAX);
                }
            }
        }
        let mut release = Release(&pass_on, false);
        let (mut buf, mut staging, mut written) = (Vec::new(), Staging::default(), 0u64);
        for i in (first..slices.len()).step_by(2) {
            buf.clear();
            for_each_prefetched(slices[i], |s| encode(s, &mut buf));
            let mut t = turn.lock().unwrap_or_else(|p| p.into_inner());
            while t.next != i {
                if t.next == usize::MAX {
                    release.1 = true;
                    return Ok(written);
                }
                t = turn_changed.wait(t).unwrap_or_else(|p| p.into_inner());
            }
            t.out.put(&buf, &mut staging)?;
            written += buf.len() as u64;
            t.next = i + 1;
            turn_changed.notify_all();
        }
        release.1 = true;
        Ok(written)
    };
    let written = std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("storyline-encode".into())
            .spawn_scoped(scope, || work(1))
            .map_err(|e| std::io::Error::other(format!("spawning an encoding thread: {e}")))?;
        let mine = work(0);
        let theirs = helper
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("a story encoding thread panicked")));
        Ok::<_, std::io::Error>(mine? + theirs?)
    })?;
    let turn = turn.into_inner().unwrap_or_else(|p| p.into_inner());
    turn.out.finish()?;
    Ok(written)
}

/// The file sink as a delivery [`Target`](super::deliver::Target): a write error is retried.
pub struct FileTarget(pub RotatingFileSink);

impl super::deliver::Target for FileTarget {
    fn deliver(
        &mut self,
        batch: &super::deliver::Batch<'_>,
    ) -> Result<Vec<super::deliver::ItemFailure>, super::deliver::DeliveryError> {
        self.0
            .publish(batch.stories)
            .map(|_| Vec::new())
            .map_err(|e| super::deliver::DeliveryError::transient(format!("{e:#}")))
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

    /// A publication of many slices (encoded on two threads) writes the lines a one-by-one publication
    /// writes, in the same order.
    #[test]
    fn a_large_publication_writes_every_story_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let stories: Vec<Story> = (0..(3 * PUBLISH_SLICE as u128 + 7)).map(story).collect();
        let (big, small) = (
            dir.path().join("big.ndjson"),
            dir.path().join("small.ndjson"),
        );
        RotatingFileSink::open(&big, 0, 0, true)
            .unwrap()
            .publish(&stories)
            .unwrap();
        let one_by_one = RotatingFileSink::open(&small, 0, 0, false).unwrap();
        for s in &stories {
            one_by_one.publish(std::slice::from_ref(s)).unwrap();
        }
        let text = std::fs::read_to_string(&big).unwrap();
        assert_eq!(text.lines().count(), stories.len());
        assert_eq!(text, std::fs::read_to_string(&small).unwrap());
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

    #[test]
    fn rotates_by_age_and_gzips_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stories.ndjson");
        let sink = RotatingFileSink::with_options(
            &path,
            FileOptions {
                rotate_every: Some(Duration::from_millis(200)),
                gzip: true,
                keep: 10,
                ..Default::default()
            },
        )
        .unwrap();
        sink.publish(&[story(1)]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        sink.publish(&[story(2)]).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names[0].starts_with("stories-") && names[0].ends_with(".ndjson.gz"),
            "{names:?}"
        );
        assert_eq!(names[1], "stories.ndjson");
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(dir.path().join(&names[0])).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["story_id"], "00000000000000000000000000000001");
        let live = std::fs::read_to_string(&path).unwrap();
        assert!(live.contains("00000000000000000000000000000002"));
    }

    #[test]
    fn csv_files_start_with_a_header_and_avro_files_are_containers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        let opts = FileOptions {
            max_bytes: 600,
            encoding: Encoding::Csv,
            ..Default::default()
        };
        let sink = RotatingFileSink::with_options(&path, opts).unwrap();
        for i in 0..6 {
            sink.publish(&[story(i)]).unwrap();
        }
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.len() > 1);
        let mut records = 0;
        for f in files {
            let rows = encode::csv::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
            assert_eq!(rows[0][0], "story_id", "{}", f.display());
            records += rows.len() - 1;
        }
        assert_eq!(records, 6);

        let path = dir.path().join("s.avro");
        let opts = FileOptions {
            encoding: Encoding::Avro,
            ..Default::default()
        };
        let sink = RotatingFileSink::with_options(&path, opts.clone()).unwrap();
        sink.publish(&[story(1), story(2)]).unwrap();
        sink.publish(&[story(3)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(apache_avro::Reader::new(&bytes[..]).unwrap().count(), 3);
        drop(sink);
        // Reopened: the old container is rotated away, the new file is a container of its own.
        let sink = RotatingFileSink::with_options(&path, opts).unwrap();
        sink.publish(&[story(4)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(apache_avro::Reader::new(&bytes[..]).unwrap().count(), 1);
    }
}
