//! The file source: follows a log file that a sensor appends to (Zeek JSON logs, Suricata `eve.json`),
//! one record per line.
//!
//! - First start: reads the file from its beginning.
//! - Position: after every batch the ingestor acknowledged, the offset (and line number, device, inode and
//!   a fingerprint of the file's first bytes) goes to a small state file, written atomically. A restart goes
//!   on from there, so every line is ingested at least once; a line may come again after a crash between
//!   the acknowledgement and the state write, and event ids make that harmless.
//! - Rotation by rename (logrotate's default, Suricata and Zeek): when the path names a new file, the old
//!   one is read to its end, and kept being read until it has been quiet for `rotate_wait` (a writer may
//!   add lines until it reopens), then the new file is read from its beginning. If the service was down
//!   across a rotation, the old file is found again by its inode in the same directory.
//! - Rotation by copytruncate: a file that got shorter than the offset, or whose first bytes changed, is
//!   read again from its beginning. Lines written between the last read and the truncation are only in the
//!   copy: copytruncate can lose them, as it can for any reader.
//! - A line longer than the record limit is cut at limit + 1 bytes and handed on (the ingestor dead-letters
//!   it as oversized); the rest of it is skipped without being held in memory.
//! - A last line without its newline is not read until the newline is written.

use super::{check_format, check_sensor_name, duration, RecordIngest};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `[[sources.file]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Format of every line, e.g. `suricata` or `zeek`.
    pub format: String,
    pub sensor: String,
    /// How often the file is checked for new lines and rotation when it has none.
    #[serde(default = "default_poll_interval", with = "duration")]
    pub poll_interval: Duration,
    /// Lines per ingested batch, at most.
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// After a rotation by rename, the old file is read until it has had no new line for this long.
    #[serde(default = "default_rotate_wait", with = "duration")]
    pub rotate_wait: Duration,
}

fn default_poll_interval() -> Duration {
    Duration::from_millis(250)
}

fn default_batch_records() -> usize {
    1000
}

fn default_rotate_wait() -> Duration {
    Duration::from_secs(1)
}

/// A batch is also cut at this size.
const BATCH_BYTES: usize = 4 << 20;
const READ_CHUNK: usize = 64 << 10;
/// How many leading bytes identify a file (to notice a truncated file that grew back past the offset).
const FINGERPRINT_BYTES: u64 = 1024;

impl FileConfig {
    pub fn new(path: impl Into<PathBuf>, format: &str, sensor: &str) -> Self {
        Self {
            path: path.into(),
            format: format.into(),
            sensor: sensor.into(),
            poll_interval: default_poll_interval(),
            batch_records: default_batch_records(),
            rotate_wait: default_rotate_wait(),
        }
    }

    /// Errors start with the key's name (the caller prefixes `sources.file[i].`).
    pub(crate) fn validate(&self, formats: &[&str]) -> Result<(), String> {
        if self.path.as_os_str().is_empty() || self.path.file_name().is_none() {
            return Err(format!(
                "path`: {:?} does not name a file",
                self.path.display()
            ));
        }
        check_format(&self.format, formats).map_err(|e| format!("format`: {e}"))?;
        check_sensor_name(&self.sensor).map_err(|e| format!("sensor`: {e}"))?;
        if self.poll_interval.is_zero() {
            return Err("poll_interval`: must be a positive duration such as \"250ms\"".into());
        }
        if self.batch_records == 0 {
            return Err("batch_records`: must be at least 1".into());
        }
        Ok(())
    }
}

/// What is remembered across restarts, per followed path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Bytes of the file acknowledged by the ingestor (always just after a newline).
    pub offset: u64,
    /// Lines acknowledged (the next line's number is `line + 1`).
    pub line: u64,
    /// xxh3 of the file's first `fingerprint_len` bytes.
    pub fingerprint: u64,
    pub fingerprint_len: u64,
}

/// The state file of a followed path inside the state directory.
pub fn state_file(state_dir: &Path, path: &Path) -> PathBuf {
    let h = xxhash_rust::xxh3::xxh3_64(path.as_os_str().as_encoded_bytes());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    state_dir.join(format!("file-{name}-{h:016x}.json"))
}

/// A running file source; [`Follower::stop`] ends it.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Follower {
    pub fn start(
        cfg: FileConfig,
        state_dir: &Path,
        max_record_bytes: usize,
        ingest: Arc<dyn RecordIngest>,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let tail = Tail {
            source: format!("file:{}", cfg.path.display()),
            state_path: state_file(state_dir, &cfg.path),
            cfg,
            max_record: max_record_bytes.max(1),
            ingest,
            stop: stop.clone(),
        };
        metrics::counter!("storyline_source_received_total", "source" => "file").increment(0);
        let thread = std::thread::Builder::new()
            .name("source-file".into())
            .spawn(move || tail.run())?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops after the batch in progress (if any) is acknowledged and its position saved.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Tail {
    cfg: FileConfig,
    source: String,
    state_path: PathBuf,
    max_record: usize,
    ingest: Arc<dyn RecordIngest>,
    stop: Arc<AtomicBool>,
}

struct Cursor {
    file: File,
    pos: Position,
    /// In the middle of an oversized line whose head was handed on: skip to its end.
    skipping: bool,
    /// The path names another file now (or none): this one is read until it has been quiet.
    replaced_quiet_since: Option<Instant>,
    /// Formats whose records depend on a header line (Zeek TSV `#fields`, nfdump and Argus csv column
    /// names): the header lines in force, repeated in front of every batch, since each batch is parsed
    /// on its own and may start anywhere, also after a restart. Built from the head of the file the first
    /// time it is needed.
    header: Option<storyline_parse::HeaderContext>,
}

enum Step {
    /// Read and acknowledged something; look again at once.
    Progress,
    /// Nothing complete to read.
    Idle,
}

enum Change {
    Same,
    Truncated,
    Replaced,
}

fn identity(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn fingerprint(file: &File, len: u64) -> std::io::Result<Option<u64>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        let n = read_at(file, &mut buf[got..], got as u64)?;
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    Ok(Some(xxhash_rust::xxh3::xxh3_64(&buf)))
}

impl Tail {
    fn run(self) {
        let mut cur = self.resume();
        let mut backoff = Duration::from_millis(100);
        while !self.stopping() {
            let Some(c) = cur.as_mut() else {
                cur = self.open_path();
                if cur.is_none() {
                    self.sleep(self.cfg.poll_interval);
                }
                continue;
            };
            match self.step(c) {
                Ok(Step::Progress) => {
                    backoff = Duration::from_millis(100);
                    if let Some(q) = c.replaced_quiet_since.as_mut() {
                        *q = Instant::now();
                    }
                }
                Ok(Step::Idle) => match self.change(c) {
                    Ok(Change::Same) => {
                        // (A file being drained after a rotation that the path names again is current.)
                        c.replaced_quiet_since = None;
                        self.sleep(self.cfg.poll_interval);
                    }
                    Ok(Change::Truncated) => {
                        tracing::info!(source = %self.source, offset = c.pos.offset,
                            "file was truncated (copytruncate?): reading it again from its start");
                        c.pos.offset = 0;
                        c.pos.line = 0;
                        c.pos.fingerprint = 0;
                        c.pos.fingerprint_len = 0;
                        c.skipping = false;
                        // The old content's header says nothing about the new content's columns.
                        c.header = None;
                        self.save(&c.pos);
                    }
                    Ok(Change::Replaced) => {
                        let since = *c.replaced_quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= self.cfg.rotate_wait {
                            tracing::info!(source = %self.source, "file was rotated: following the new one");
                            cur = self.open_path();
                            if let Some(c) = &cur {
                                self.save(&c.pos);
                            }
                        } else {
                            self.sleep(self.cfg.poll_interval);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(source = %self.source, error = %e, "cannot check the file");
                        self.sleep(self.cfg.poll_interval);
                    }
                },
                Err(e) => {
                    metrics::counter!("storyline_source_ingest_errors_total", "source" => "file")
                        .increment(1);
                    tracing::warn!(source = %self.source, error = %e, retry_in = ?backoff,
                        "reading or ingesting failed: the position stays, retrying");
                    self.sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    /// The file at the configured path, from its beginning.
    fn open_path(&self) -> Option<Cursor> {
        let file = File::open(&self.cfg.path).ok()?;
        let (dev, ino) = identity(&file.metadata().ok()?);
        Some(Cursor {
            file,
            pos: Position {
                path: self.cfg.path.clone(),
                dev,
                ino,
                ..Position::default()
            },
            skipping: false,
            replaced_quiet_since: None,
            header: None,
        })
    }

    /// Where the last run stopped, if that file can still be found.
    fn resume(&self) -> Option<Cursor> {
        let saved = match std::fs::read(&self.state_path) {
            Ok(bytes) => match serde_json::from_slice::<Position>(&bytes) {
                Ok(p) if p.path == self.cfg.path => Some(p),
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(source = %self.source, state = %self.state_path.display(), error = %e,
                        "unreadable position: reading the file from its start (events already stored are deduplicated)");
                    None
                }
            },
            Err(_) => None,
        };
        let Some(saved) = saved else {
            return self.open_path();
        };
        let matches = |file: &File| -> bool {
            let Ok(m) = file.metadata() else { return false };
            identity(&m) == (saved.dev, saved.ino)
                && m.len() >= saved.offset
                && (saved.fingerprint_len == 0
                    || fingerprint(file, saved.fingerprint_len).ok().flatten()
                        == Some(saved.fingerprint))
        };
        let cursor = |file: File, replaced: bool| Cursor {
            file,
            pos: saved.clone(),
            skipping: false,
            replaced_quiet_since: replaced.then(Instant::now),
            header: None,
        };
        if let Ok(file) = File::open(&self.cfg.path) {
            if matches(&file) {
                return Some(cursor(file, false));
            }
        }
        // Rotated while we were down: the old file may still be in the same directory under a new name.
        let dir = match self.cfg.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let Ok(m) = e.metadata() else { continue };
                if identity(&m) != (saved.dev, saved.ino) || !m.is_file() {
                    continue;
                }
                if let Ok(file) = File::open(e.path()) {
                    if matches(&file) {
                        tracing::info!(source = %self.source, rotated = %e.path().display(),
                            "the file was rotated while stopped: reading the rest of the old one first");
                        return Some(cursor(file, true));
                    }
                }
            }
        }
        tracing::warn!(source = %self.source, offset = saved.offset,
            "the file read before is gone or was rewritten: reading the current one from its start; \
             lines added to the old file after the saved offset were not read");
        self.open_path()
    }

    fn change(&self, c: &Cursor) -> std::io::Result<Change> {
        match std::fs::metadata(&self.cfg.path) {
            Ok(m) if identity(&m) != (c.pos.dev, c.pos.ino) => return Ok(Change::Replaced),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Change::Replaced),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let len = c.file.metadata()?.len();
        if len < c.pos.offset {
            return Ok(Change::Truncated);
        }
        if c.pos.fingerprint_len > 0
            && fingerprint(&c.file, c.pos.fingerprint_len)? != Some(c.pos.fingerprint)
        {
            return Ok(Change::Truncated);
        }
        Ok(Change::Same)
    }

    /// Reads one batch of complete lines from the offset and ingests it; advances and saves the position
    /// only once the ingestor acknowledged.
    fn step(&self, c: &mut Cursor) -> anyhow::Result<Step> {
        if c.skipping {
            return self.skip_rest_of_line(c);
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut lines = 0usize;
        let mut at = c.pos.offset;
        loop {
            let n = read_at(&c.file, &mut chunk, at)?;
            if n == 0 {
                break;
            }
            lines += memchr_count(&chunk[..n]);
            buf.extend_from_slice(&chunk[..n]);
            at += n as u64;
            if lines >= self.cfg.batch_records || (lines > 0 && buf.len() >= BATCH_BYTES) {
                break;
            }
            let partial = buf.len() - buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if partial > self.max_record {
                break;
            }
        }
        let (body, n_lines) = if lines >= self.cfg.batch_records {
            let end = nth_newline(&buf, self.cfg.batch_records).expect("counted") + 1;
            (&buf[..end], self.cfg.batch_records)
        } else if lines > 0 {
            let end = buf.iter().rposition(|b| *b == b'\n').expect("counted") + 1;
            (&buf[..end], lines)
        } else if buf.len() > self.max_record {
            // One line over the limit: hand on its head (dead-lettered as oversized), skip the rest.
            let head = &buf[..self.max_record + 1];
            self.ingest_lines(head, 1, c.pos.line + 1)?;
            c.pos.offset += head.len() as u64;
            c.skipping = true;
            return Ok(Step::Progress);
        } else {
            return Ok(Step::Idle);
        };
        match self.header_context(c)? {
            Some(ctx) => {
                let mut with_header = ctx.prefix().to_vec();
                let repeated = memchr_count(&with_header) as u64;
                with_header.extend_from_slice(body);
                // The header lines of this batch count for the next one only once it is acknowledged.
                let mut next = ctx.clone();
                next.observe_lines(body);
                self.ingest_lines(
                    &with_header,
                    n_lines,
                    (c.pos.line + 1).saturating_sub(repeated),
                )?;
                c.header = Some(next);
            }
            None => self.ingest_lines(body, n_lines, c.pos.line + 1)?,
        }
        c.pos.offset += body.len() as u64;
        c.pos.line += n_lines as u64;
        self.update_fingerprint(c);
        self.save(&c.pos);
        Ok(Step::Progress)
    }

    /// The header lines in force at the cursor, for formats that have them. The first time, they are
    /// read from the lines before the offset (at most the first 64 KiB: a header that changed further
    /// down a file read after a restart is seen only when the next one comes).
    fn header_context(
        &self,
        c: &mut Cursor,
    ) -> std::io::Result<Option<storyline_parse::HeaderContext>> {
        if let Some(ctx) = &c.header {
            return Ok(Some(ctx.clone()));
        }
        let Some(mut ctx) = storyline_parse::HeaderContext::new(&self.cfg.format) else {
            return Ok(None);
        };
        if c.pos.offset > 0 {
            ctx.observe_lines(&read_head(&c.file, c.pos.offset)?);
        }
        c.header = Some(ctx.clone());
        Ok(Some(ctx))
    }

    fn ingest_lines(&self, body: &[u8], lines: usize, first_line: u64) -> anyhow::Result<()> {
        metrics::counter!("storyline_source_received_total", "source" => "file")
            .increment(lines as u64);
        self.ingest.ingest(
            body,
            &self.cfg.format,
            &self.cfg.sensor,
            &self.source,
            first_line,
        )?;
        Ok(())
    }

    fn skip_rest_of_line(&self, c: &mut Cursor) -> anyhow::Result<Step> {
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = read_at(&c.file, &mut chunk, c.pos.offset)?;
            if n == 0 {
                return Ok(Step::Idle);
            }
            match chunk[..n].iter().position(|b| *b == b'\n') {
                Some(i) => {
                    c.pos.offset += i as u64 + 1;
                    c.pos.line += 1;
                    c.skipping = false;
                    self.update_fingerprint(c);
                    self.save(&c.pos);
                    return Ok(Step::Progress);
                }
                None => c.pos.offset += n as u64,
            }
            if self.stopping() {
                return Ok(Step::Idle);
            }
        }
    }

    fn update_fingerprint(&self, c: &mut Cursor) {
        let want = c.pos.offset.min(FINGERPRINT_BYTES);
        if want > c.pos.fingerprint_len {
            if let Ok(Some(h)) = fingerprint(&c.file, want) {
                c.pos.fingerprint = h;
                c.pos.fingerprint_len = want;
            }
        }
    }

    /// Writes the position atomically (temporary file, fsync, rename). A failure only means lines are read
    /// again after a restart.
    fn save(&self, pos: &Position) {
        if let Err(e) = write_atomically(
            &self.state_path,
            &serde_json::to_vec(pos).unwrap_or_default(),
        ) {
            tracing::warn!(source = %self.source, state = %self.state_path.display(), error = %e,
                "cannot save the file position: after a restart lines will be read again");
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The complete lines of the file before `offset`, at most the first 64 KiB of them.
fn read_head(file: &File, offset: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; offset.min(64 << 10) as usize];
    let n = read_at(file, &mut buf, 0)?;
    buf.truncate(
        buf[..n]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1),
    );
    Ok(buf)
}

fn memchr_count(b: &[u8]) -> usize {
    b.iter().filter(|c| **c == b'\n').count()
}

fn nth_newline(b: &[u8], n: usize) -> Option<usize> {
    b.iter()
        .enumerate()
        .filter(|(_, c)| **c == b'\n')
        .nth(n.checked_sub(1)?)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::batch::tests::Recorder;
    use std::io::Write;

    struct Setup {
        dir: tempfile::TempDir,
        rec: Arc<Recorder>,
    }

    impl Setup {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
                rec: Arc::new(Recorder::default()),
            }
        }

        fn log(&self) -> PathBuf {
            self.dir.path().join("eve.json")
        }

        fn start(&self, max_record: usize) -> Follower {
            let mut cfg = FileConfig::new(self.log(), "suricata", "ids-1");
            cfg.poll_interval = Duration::from_millis(20);
            cfg.rotate_wait = Duration::from_millis(200);
            cfg.batch_records = 7;
            let state = self.dir.path().join("state");
            std::fs::create_dir_all(&state).unwrap();
            Follower::start(cfg, &state, max_record, self.rec.clone()).unwrap()
        }

        fn append(&self, from: usize, to: usize) {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log())
                .unwrap();
            for i in from..to {
                writeln!(f, "{{\"n\":{i}}}").unwrap();
            }
        }

        fn lines(&self) -> Vec<String> {
            self.rec
                .records()
                .into_iter()
                .map(|(_, l)| l)
                .filter(|l| !l.is_empty())
                .collect()
        }

        /// Waits until `n` lines arrived; returns them.
        fn wait(&self, n: usize) -> Vec<String> {
            for _ in 0..500 {
                if self.lines().len() >= n {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Anything more that would arrive (duplicates) has a chance to.
            std::thread::sleep(Duration::from_millis(100));
            self.lines()
        }
    }

    fn expect(from: usize, to: usize) -> Vec<String> {
        (from..to).map(|i| format!("{{\"n\":{i}}}")).collect()
    }

    #[test]
    fn reads_from_the_start_and_waits_for_the_newline_of_a_last_line() {
        let s = Setup::new();
        s.append(0, 20);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(s.log())
            .unwrap();
        f.write_all(b"{\"n\":20").unwrap();
        let follower = s.start(1 << 20);
        assert_eq!(s.wait(20), expect(0, 20));
        f.write_all(b"}\n").unwrap();
        assert_eq!(s.wait(21), expect(0, 21));
        follower.stop();
        // Batches of at most 7 lines, numbered from the file's first line.
        assert_eq!(*s.rec.first_lines.lock().unwrap(), vec![1, 8, 15, 21]);
        assert!(s
            .rec
            .batches
            .lock()
            .unwrap()
            .iter()
            .all(|(f, s, _)| f == "suricata" && s == "ids-1"));
    }

    #[test]
    fn every_zeek_tsv_batch_carries_the_header_in_force_also_after_a_restart() {
        let s = Setup::new();
        let log = s.dir.path().join("conn.log");
        let header = "#separator \\x09\n#fields\tts\tuid\n#types\ttime\tstring\n";
        let mut text = String::from(header);
        for i in 0..10 {
            text.push_str(&format!("{i}.0\tC{i}\n"));
        }
        std::fs::write(&log, &text).unwrap();
        let state = s.dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let start = || {
            let mut cfg = FileConfig::new(&log, "zeek_tsv", "zeek-1");
            cfg.poll_interval = Duration::from_millis(20);
            cfg.batch_records = 4;
            Follower::start(cfg, &state, 1 << 20, s.rec.clone()).unwrap()
        };
        let follower = start();
        let records = |s: &Setup| {
            s.lines()
                .into_iter()
                .filter(|l| !l.starts_with('#'))
                .count()
        };
        for _ in 0..500 {
            if records(&s) >= 10 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        follower.stop();
        // A second header block mid-file replaces the first for the batches after it.
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"#fields\tuid\tts\n#types\tstring\ttime\n")
            .unwrap();
        for i in 10..15 {
            writeln!(f, "C{i}\t{i}.0").unwrap();
        }
        let follower = start();
        for _ in 0..500 {
            if records(&s) >= 15 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        follower.stop();
        let batches = s.rec.batches.lock().unwrap().clone();
        assert!(batches.len() >= 4, "{batches:?}");
        for (_, _, body) in &batches {
            let records: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
            let Some(first) = records.first() else {
                continue;
            };
            let fields = body
                .lines()
                .rfind(|l| l.starts_with("#fields"))
                .unwrap_or_else(|| panic!("a batch without its header: {body:?}"));
            let expected = if first.starts_with('C') {
                "#fields\tuid\tts"
            } else {
                "#fields\tts\tuid"
            };
            assert_eq!(fields, expected, "{body:?}");
        }
        assert_eq!(
            batches
                .iter()
                .map(|(_, _, b)| b.lines().filter(|l| !l.starts_with('#')).count())
                .sum::<usize>(),
            15,
            "every record once"
        );
    }

    #[test]
    fn a_restart_goes_on_from_the_acknowledged_position() {
        let s = Setup::new();
        s.append(0, 10);
        let f = s.start(1 << 20);
        assert_eq!(s.wait(10), expect(0, 10));
        f.stop();
        s.append(10, 25);
        let f = s.start(1 << 20);
        assert_eq!(s.wait(25), expect(0, 25), "no line twice, none lost");
        f.stop();
    }

    #[test]
    fn rotation_by_rename_reads_the_old_file_to_its_end_then_the_new_one() {
        let s = Setup::new();
        s.append(0, 10);
        let f = s.start(1 << 20);
        assert_eq!(s.wait(10), expect(0, 10));
        // The writer adds lines after the rename, before it reopens (as on SIGHUP).
        let rotated = s.dir.path().join("eve.json.1");
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(s.log())
            .unwrap();
        std::fs::rename(s.log(), &rotated).unwrap();
        for i in 10..15 {
            writeln!(old, "{{\"n\":{i}}}").unwrap();
        }
        s.append(15, 30);
        std::thread::sleep(Duration::from_millis(50));
        writeln!(old, "{{\"n\":30}}").unwrap();
        let mut got = s.wait(31);
        got.sort();
        let mut want = expect(0, 31);
        want.sort();
        assert_eq!(got, want);
        f.stop();
    }

    #[test]
    fn copytruncate_reads_the_file_again_from_its_start() {
        let s = Setup::new();
        s.append(0, 10);
        let f = s.start(1 << 20);
        assert_eq!(s.wait(10), expect(0, 10));
        std::fs::copy(s.log(), s.dir.path().join("eve.json.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(s.log())
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        s.append(10, 13);
        let got = s.wait(13);
        assert_eq!(got, expect(0, 13));
        f.stop();
    }

    #[test]
    fn truncated_and_grown_past_the_offset_is_noticed_by_the_fingerprint() {
        let s = Setup::new();
        s.append(0, 3);
        let f = s.start(1 << 20);
        assert_eq!(s.wait(3), expect(0, 3));
        f.stop();
        // While stopped: truncated, then more written than before.
        std::fs::write(s.log(), b"").unwrap();
        s.append(100, 110);
        let f = s.start(1 << 20);
        let got = s.wait(13);
        assert_eq!(got[3..], expect(100, 110)[..]);
        f.stop();
    }

    #[test]
    fn rotation_while_stopped_finds_the_old_file_by_inode() {
        let s = Setup::new();
        s.append(0, 5);
        let f = s.start(1 << 20);
        assert_eq!(s.wait(5), expect(0, 5));
        f.stop();
        s.append(5, 8);
        std::fs::rename(s.log(), s.dir.path().join("eve.json.1")).unwrap();
        s.append(8, 12);
        let f = s.start(1 << 20);
        assert_eq!(s.wait(12), expect(0, 12));
        f.stop();
    }

    #[test]
    fn an_oversized_line_is_cut_and_the_next_lines_follow() {
        let s = Setup::new();
        s.append(0, 2);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(s.log())
            .unwrap();
        f.write_all(&vec![b'x'; 300_000]).unwrap();
        f.write_all(b"\n").unwrap();
        s.append(2, 4);
        let follower = s.start(1000);
        let got = s.wait(5);
        assert_eq!(
            got.len(),
            5,
            "{:?}",
            got.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert_eq!(got[2].len(), 1001);
        assert_eq!([&got[..2], &got[3..]].concat(), expect(0, 4));
        follower.stop();
        // The position is after the long line.
        let state = std::fs::read(state_file(&s.dir.path().join("state"), &s.log())).unwrap();
        let pos: Position = serde_json::from_slice(&state).unwrap();
        assert_eq!(pos.line, 5);
        assert_eq!(pos.offset, std::fs::metadata(s.log()).unwrap().len());
    }

    #[test]
    fn a_failing_store_keeps_the_position_until_it_answers() {
        let s = Setup::new();
        s.rec.fail.store(true, Ordering::SeqCst);
        s.append(0, 3);
        let f = s.start(1 << 20);
        std::thread::sleep(Duration::from_millis(300));
        assert!(s.lines().is_empty());
        assert!(!state_file(&s.dir.path().join("state"), &s.log()).exists());
        s.rec.fail.store(false, Ordering::SeqCst);
        assert_eq!(s.wait(3), expect(0, 3));
        f.stop();
    }

    #[test]
    fn state_files_are_distinct_per_path() {
        let d = Path::new("/s");
        assert_ne!(
            state_file(d, Path::new("/a/eve.json")),
            state_file(d, Path::new("/b/eve.json"))
        );
        assert!(state_file(d, Path::new("/a/c o n n.log"))
            .to_string_lossy()
            .starts_with("/s/file-c_o_n_n.log-"));
    }
}
