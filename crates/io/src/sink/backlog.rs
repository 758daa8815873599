//! A sink's durable backlog and its dead letters, in `<data_dir>/sinks/<sink name>/`:
//!
//! ```text
//! lock                     held (flock) by the process that delivers for this sink
//! segments/<offset>.seg    append-only log of records; <offset> (20 digits) is the first byte's offset
//! acked                    the offset up to which every record is delivered or dead-lettered
//! dead/<ms>-<pid>-<n>.ndjson     dead letters: a header line (why, when, attempts), then story lines
//! redrive/…                dead letters moved back by `storyline sinks redrive`, appended to the backlog
//!                          by the delivering process
//! ```
//!
//! A record is one published batch: `len u32 | crc32 u32 | appended_ms i64 | payload`, little endian,
//! payload = the batch as story NDJSON, crc over `appended_ms | payload`. An append is written and
//! fsynced before it returns; a torn record at the tail (crash mid-append) is cut when the backlog is
//! opened. Offsets are logical byte offsets over all segments and never go back, so the backlog's size
//! is `end - acked`; segments wholly below `acked` are deleted.

use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use storyline_model::Story;

const HEADER: u64 = 16;

/// One record read back.
#[derive(Clone, Debug)]
pub struct Record {
    pub offset: u64,
    /// Offset of the record after this one.
    pub next: u64,
    pub appended_ms: i64,
    pub stories: Vec<Story>,
}

/// What [`Backlog::append`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    Yes,
    /// The backlog holds `max_bytes` already (or the batch alone is larger): nothing was written.
    Full,
}

pub struct Backlog {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    inner: Mutex<Inner>,
    grew: Condvar,
    _lock: File,
}

struct Inner {
    file: File,
    /// Start offsets of the segments, ascending; the last one is `file`.
    segments: Vec<u64>,
    /// Durable end: everything before it is written and fsynced.
    end: u64,
    acked: u64,
}

fn segment_path(dir: &Path, start: u64) -> PathBuf {
    dir.join("segments").join(format!("{start:020}.seg"))
}

fn list_segments(dir: &Path) -> anyhow::Result<Vec<u64>> {
    let mut v = Vec::new();
    let seg_dir = dir.join("segments");
    if !seg_dir.exists() {
        return Ok(v);
    }
    for e in std::fs::read_dir(&seg_dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_suffix(".seg")
            .and_then(|n| n.parse::<u64>().ok())
        {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

fn read_acked(dir: &Path) -> anyhow::Result<Option<u64>> {
    match std::fs::read_to_string(dir.join("acked")) {
        Ok(s) => Ok(Some(s.trim().parse().with_context(|| {
            format!("{}: not an offset", dir.join("acked").display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes `bytes` to `path` through a temporary file, fsynced, renamed.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Takes an exclusive advisory lock on `<dir>/lock`, or says who has it.
fn lock(dir: &Path) -> anyhow::Result<Option<File>> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.join("lock"))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Ok(None);
        }
    }
    Ok(Some(f))
}

/// Whether a process holds the backlog of `dir` (a running service).
pub fn is_locked(dir: &Path) -> bool {
    dir.exists() && matches!(lock(dir), Ok(None))
}

/// Reads the frame at `pos` of an open segment; `None` at a clean end or a torn/corrupt frame.
fn read_frame(f: &mut File, limit: u64, pos: u64) -> std::io::Result<Option<(i64, Vec<u8>)>> {
    if pos + HEADER > limit {
        return Ok(None);
    }
    f.seek(SeekFrom::Start(pos))?;
    let mut h = [0u8; HEADER as usize];
    f.read_exact(&mut h)?;
    let len = u32::from_le_bytes(h[0..4].try_into().unwrap()) as u64;
    let crc = u32::from_le_bytes(h[4..8].try_into().unwrap());
    let ms = i64::from_le_bytes(h[8..16].try_into().unwrap());
    if pos + HEADER + len > limit {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    f.read_exact(&mut payload)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&h[8..16]);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Ok(None);
    }
    Ok(Some((ms, payload)))
}

fn decode_payload(payload: &[u8]) -> anyhow::Result<Vec<Story>> {
    payload
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<Story>(l).context("a backlog record holds a bad story line")
        })
        .collect()
}

pub(crate) fn encode_payload(stories: &[Story]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(stories.len() * 600);
    for s in stories {
        super::story_line(s, &mut buf);
    }
    buf
}

impl Backlog {
    /// Opens (creating) the backlog in `dir`, taking its lock, cutting a torn tail.
    pub fn open(dir: &Path, max_bytes: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("segments"))
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::create_dir_all(dir.join("dead"))?;
        std::fs::create_dir_all(dir.join("redrive"))?;
        let lock = lock(dir)?.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the sink's backlog is in use by another storyline process",
                dir.display()
            )
        })?;
        let mut segments = list_segments(dir)?;
        let mut acked = read_acked(dir)?.unwrap_or(segments.first().copied().unwrap_or(0));
        if segments.is_empty() {
            segments.push(acked);
            File::create(segment_path(dir, acked))?;
            sync_dir(&dir.join("segments"));
        }
        let last = *segments.last().unwrap();
        let path = segment_path(dir, last);
        let mut file = OpenOptions::new().read(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        // Find the valid end of the last segment.
        let mut pos = 0;
        while let Some((_, payload)) = read_frame(&mut file, len, pos)? {
            pos += HEADER + payload.len() as u64;
        }
        if pos < len {
            tracing::warn!(path = %path.display(), cut = len - pos, "cut a torn record at the end of a sink backlog (crash mid-append)");
            file.set_len(pos)?;
            file.sync_all()?;
        }
        let end = last + pos;
        if acked < segments[0] {
            // Older segments were removed by hand: start at the first one left.
            acked = segments[0];
        }
        if acked > end {
            tracing::warn!(dir = %dir.display(), acked, end, "acked offset beyond the backlog's end; the backlog was cut");
            acked = end;
        }
        let segment_bytes = (max_bytes / 8).clamp(1 << 20, 64 << 20);
        let b = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            inner: Mutex::new(Inner {
                file,
                segments,
                end,
                acked,
            }),
            grew: Condvar::new(),
            _lock: lock,
        };
        b.prune(&mut b.lock_inner());
        Ok(b)
    }

    fn lock_inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes not yet acknowledged.
    pub fn len_bytes(&self) -> u64 {
        let i = self.lock_inner();
        i.end - i.acked
    }

    pub fn acked(&self) -> u64 {
        self.lock_inner().acked
    }

    pub fn end(&self) -> u64 {
        self.lock_inner().end
    }

    /// Appends one batch and fsyncs it. `Full` when it does not fit within `max_bytes`.
    pub fn append(&self, stories: &[Story], appended_ms: i64) -> anyhow::Result<Appended> {
        self.append_payload(&encode_payload(stories), appended_ms)
    }

    pub(crate) fn append_payload(
        &self,
        payload: &[u8],
        appended_ms: i64,
    ) -> anyhow::Result<Appended> {
        let frame_len = HEADER + payload.len() as u64;
        let mut frame = Vec::with_capacity(frame_len as usize);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&appended_ms.to_le_bytes());
        hasher.update(payload);
        frame.extend_from_slice(&hasher.finalize().to_le_bytes());
        frame.extend_from_slice(&appended_ms.to_le_bytes());
        frame.extend_from_slice(payload);

        let mut i = self.lock_inner();
        if payload.len() > u32::MAX as usize || i.end - i.acked + frame_len > self.max_bytes {
            return Ok(Appended::Full);
        }
        let seg_start = *i.segments.last().unwrap();
        if i.end - seg_start >= self.segment_bytes {
            let path = segment_path(&self.dir, i.end);
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            sync_dir(&self.dir.join("segments"));
            let end = i.end;
            i.segments.push(end);
            i.file = file;
        }
        let seg_start = *i.segments.last().unwrap();
        let res = i.file.write_all(&frame).and_then(|_| i.file.sync_data());
        if let Err(e) = res {
            // Leave no half record behind for the next append to follow.
            let keep = i.end - seg_start;
            let _ = i.file.set_len(keep);
            return Err(anyhow::anyhow!(
                "{}: appending to the sink backlog: {e}",
                self.dir.display()
            ));
        }
        i.end += frame_len;
        drop(i);
        self.grew.notify_all();
        Ok(Appended::Yes)
    }

    /// Waits until the backlog holds data at or after `from`, or `timeout` passes.
    pub fn wait_for_data(&self, from: u64, timeout: Duration) {
        let i = self.lock_inner();
        if i.end > from {
            return;
        }
        let _ = self
            .grew
            .wait_timeout_while(i, timeout, |i| i.end <= from)
            .unwrap_or_else(|p| p.into_inner());
    }

    /// Wakes [`wait_for_data`](Self::wait_for_data) callers (used on stop).
    pub fn wake(&self) {
        self.grew.notify_all();
    }

    /// Reads whole records from `from` on, at most `max_records` and about `max_bytes` (at least one).
    /// A corrupt record (bad checksum in a closed segment) ends the read with an error naming it.
    pub fn read(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> anyhow::Result<Vec<Record>> {
        let (segments, end) = {
            let i = self.lock_inner();
            (i.segments.clone(), i.end)
        };
        let mut out = Vec::new();
        let mut pos = from;
        let mut bytes = 0usize;
        while pos < end && out.len() < max_records && (out.is_empty() || bytes < max_bytes) {
            let idx = match segments.iter().rposition(|s| *s <= pos) {
                Some(i) => i,
                None => anyhow::bail!("offset {pos} is before the first segment"),
            };
            let start = segments[idx];
            let limit = segments.get(idx + 1).copied().unwrap_or(end) - start;
            let path = segment_path(&self.dir, start);
            let mut f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            let mut local = pos - start;
            if local >= limit {
                // End of a closed segment: go on in the next.
                match segments.get(idx + 1) {
                    Some(n) => {
                        pos = *n;
                        continue;
                    }
                    None => break,
                }
            }
            while local < limit && out.len() < max_records && (out.is_empty() || bytes < max_bytes)
            {
                let Some((ms, payload)) = read_frame(&mut f, limit, local)? else {
                    anyhow::bail!(
                        "{}: corrupt record at offset {} (checksum): stop storyline and move this segment file away (its stories are then not delivered to this sink)",
                        path.display(),
                        start + local
                    );
                };
                let next = local + HEADER + payload.len() as u64;
                bytes += payload.len();
                out.push(Record {
                    offset: start + local,
                    next: start + next,
                    appended_ms: ms,
                    stories: decode_payload(&payload)?,
                });
                local = next;
            }
            pos = start + local;
        }
        Ok(out)
    }

    /// Records everything before `offset` as delivered (persisted), and deletes wholly delivered segments.
    pub fn ack(&self, offset: u64) -> anyhow::Result<()> {
        let mut i = self.lock_inner();
        if offset <= i.acked {
            return Ok(());
        }
        let offset = offset.min(i.end);
        write_atomically(&self.dir.join("acked"), offset.to_string().as_bytes())
            .with_context(|| format!("{}: writing the acked offset", self.dir.display()))?;
        i.acked = offset;
        self.prune(&mut i);
        Ok(())
    }

    fn prune(&self, i: &mut Inner) {
        while i.segments.len() > 1 && i.segments[1] <= i.acked {
            let old = i.segments.remove(0);
            let _ = std::fs::remove_file(segment_path(&self.dir, old));
        }
    }

    /// Append time of the oldest record not yet acknowledged.
    pub fn oldest_ms(&self) -> Option<i64> {
        let acked = self.acked();
        self.read(acked, 1, 0).ok()?.first().map(|r| r.appended_ms)
    }
}

/// What a sink's directory holds, read without taking its lock (for `storyline sinks list`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DirStatus {
    pub backlog_bytes: u64,
    pub oldest_ms: Option<i64>,
    pub dead_letters: usize,
    pub dead_letter_stories: u64,
    pub redrive_pending: usize,
    pub locked: bool,
}

impl DirStatus {
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let mut st = DirStatus {
            locked: is_locked(dir),
            ..Default::default()
        };
        let segments = list_segments(dir)?;
        if let Some(last) = segments.last() {
            let len = std::fs::metadata(segment_path(dir, *last))
                .map(|m| m.len())
                .unwrap_or(0);
            let end = last + len;
            let acked = read_acked(dir)?.unwrap_or(segments[0]).min(end);
            st.backlog_bytes = end - acked;
            if let Some(start) = segments.iter().rev().find(|s| **s <= acked) {
                let limit = segments
                    .iter()
                    .find(|s| **s > *start)
                    .copied()
                    .unwrap_or(end)
                    - start;
                if let Ok(mut f) = File::open(segment_path(dir, *start)) {
                    if let Ok(Some((ms, _))) = read_frame(&mut f, limit, acked - start) {
                        st.oldest_ms = Some(ms);
                    }
                }
            }
        }
        let letters = dead_letters(&dir.join("dead"))?;
        st.dead_letters = letters.len();
        st.dead_letter_stories = letters.iter().map(|d| d.stories).sum();
        st.redrive_pending = dead_letters(&dir.join("redrive"))?.len();
        Ok(st)
    }
}

/// The header line of a dead-letter file.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// File name in `dead/`.
    #[serde(default)]
    pub file: String,
    pub sink: String,
    /// `backlog_full`, `rejected` (the receiver refused it: 4xx other than 408/429), `retries_exhausted`.
    pub reason: String,
    pub error: String,
    /// RFC 3339.
    pub at: String,
    pub attempts: u32,
    pub stories: u64,
    /// The first story versions (`<story_id>-<version>`), for a glance.
    #[serde(default)]
    pub first_ids: Vec<String>,
}

/// Writes a dead-letter file into `dir` (fsynced, renamed into place). Never overwrites.
pub fn write_dead_letter(
    dir: &Path,
    header: &DeadLetter,
    stories: &[Story],
) -> anyhow::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let mut body = Vec::new();
    let mut h = header.clone();
    h.file.clear();
    serde_json::to_writer(&mut body, &serde_json::json!({ "dead_letter": h }))?;
    body.push(b'\n');
    body.extend(encode_payload(stories));
    loop {
        let name = format!(
            "{:013}-{}-{:06}.ndjson",
            storyline_model::Timestamp::now().as_millis(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(&name);
        if path.exists() {
            continue;
        }
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir);
        return Ok(path);
    }
}

fn letter_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    if !dir.exists() {
        return Ok(v);
    }
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".ndjson") && !name.starts_with('.') {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// The dead letters in a `dead/` (or `redrive/`) directory, oldest first.
pub fn dead_letters(dir: &Path) -> anyhow::Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    for p in letter_files(dir)? {
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(_) => continue, // moved meanwhile (redrive)
        };
        let mut first = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(f), &mut first)?;
        #[derive(serde::Deserialize)]
        struct H {
            dead_letter: DeadLetter,
        }
        let mut h: H = serde_json::from_str(&first)
            .with_context(|| format!("{}: not a dead-letter file", p.display()))?;
        h.dead_letter.file = p.file_name().unwrap().to_string_lossy().into_owned();
        out.push(h.dead_letter);
    }
    Ok(out)
}

/// The stories of a dead-letter file.
pub fn read_dead_letter(path: &Path) -> anyhow::Result<(DeadLetter, Vec<Story>)> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let nl = text.iter().position(|b| *b == b'\n').unwrap_or(text.len());
    #[derive(serde::Deserialize)]
    struct H {
        dead_letter: DeadLetter,
    }
    let h: H = serde_json::from_slice(&text[..nl])
        .with_context(|| format!("{}: not a dead-letter file", path.display()))?;
    let stories = decode_payload(&text[(nl + 1).min(text.len())..])?;
    Ok((h.dead_letter, stories))
}

/// Moves every dead letter of a sink directory into its `redrive/` inbox; returns how many.
pub fn request_redrive(dir: &Path) -> anyhow::Result<usize> {
    let inbox = dir.join("redrive");
    std::fs::create_dir_all(&inbox)?;
    let mut n = 0;
    for p in letter_files(&dir.join("dead"))? {
        let to = inbox.join(p.file_name().unwrap());
        match std::fs::rename(&p, &to) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    sync_dir(&inbox);
    sync_dir(&dir.join("dead"));
    Ok(n)
}

impl Backlog {
    /// Appends the dead letters waiting in `redrive/` to the backlog, oldest first, deleting each file once
    /// its stories are appended. Stops at the first one that does not fit. Returns the stories appended.
    pub fn import_redrive(&self) -> anyhow::Result<u64> {
        let mut n = 0;
        for p in letter_files(&self.dir.join("redrive"))? {
            let (_, stories) = read_dead_letter(&p)?;
            if !stories.is_empty() {
                let now = storyline_model::Timestamp::now().as_millis();
                if self.append(&stories, now)? == Appended::Full {
                    break;
                }
            }
            std::fs::remove_file(&p)?;
            n += stories.len() as u64;
        }
        Ok(n)
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
    fn appends_read_back_ack_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backlog::open(dir.path(), 1 << 30).unwrap();
        for i in 0..10 {
            assert_eq!(
                b.append(&[story(i), story(i + 100)], 1000 + i as i64)
                    .unwrap(),
                Appended::Yes
            );
        }
        let recs = b.read(0, 100, usize::MAX).unwrap();
        assert_eq!(recs.len(), 10);
        assert_eq!(recs[3].stories[1].story_id, StoryId(103));
        assert_eq!(recs[3].appended_ms, 1003);
        b.ack(recs[4].next).unwrap();
        assert_eq!(b.oldest_ms(), Some(1005));
        let len = b.len_bytes();
        drop(b);
        // A torn tail (crash mid-append) is cut; acked and the rest survive.
        let seg = segment_path(dir.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[7, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let b = Backlog::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(b.len_bytes(), len);
        let recs = b.read(b.acked(), 100, usize::MAX).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[0].stories[0].story_id, StoryId(5));
        assert_eq!(b.append(&[story(99)], 1).unwrap(), Appended::Yes);
        assert_eq!(b.read(b.acked(), 100, usize::MAX).unwrap().len(), 6);
    }

    #[test]
    fn bounded_by_bytes_and_segments_roll_and_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        // 8 MiB bound: 1 MiB segments.
        let b = Backlog::open(dir.path(), 8 << 20).unwrap();
        let big: Vec<Story> = (0..2000).map(story).collect();
        let mut appended = 0;
        while b.append(&big, 0).unwrap() == Appended::Yes {
            appended += 1;
        }
        assert!(appended >= 2, "{appended}");
        assert!(b.len_bytes() <= 8 << 20);
        assert!(list_segments(dir.path()).unwrap().len() > 1);
        assert_eq!(
            DirStatus::read(dir.path()).unwrap().backlog_bytes,
            b.len_bytes()
        );
        assert!(DirStatus::read(dir.path()).unwrap().locked);
        let end = b.end();
        b.ack(end).unwrap();
        assert_eq!(b.len_bytes(), 0);
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
        assert_eq!(b.append(&big, 0).unwrap(), Appended::Yes);
        let recs = b.read(end, 10, usize::MAX).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].stories.len(), 2000);
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _b = Backlog::open(dir.path(), 1 << 20).unwrap();
        let e = Backlog::open(dir.path(), 1 << 20)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("in use"), "{e}");
    }

    #[test]
    fn dead_letters_list_and_redrive_into_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let b = Backlog::open(dir.path(), 1 << 20).unwrap();
        let h = DeadLetter {
            file: String::new(),
            sink: "s".into(),
            reason: "rejected".into(),
            error: "HTTP 400: bad".into(),
            at: "2026-01-01T00:00:00Z".into(),
            attempts: 1,
            stories: 2,
            first_ids: vec!["x-1".into()],
        };
        write_dead_letter(&dir.path().join("dead"), &h, &[story(1), story(2)]).unwrap();
        let list = dead_letters(&dir.path().join("dead")).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].error, "HTTP 400: bad");
        assert_eq!(request_redrive(dir.path()).unwrap(), 1);
        assert!(dead_letters(&dir.path().join("dead")).unwrap().is_empty());
        assert_eq!(DirStatus::read(dir.path()).unwrap().redrive_pending, 1);
        assert_eq!(b.import_redrive().unwrap(), 2);
        let recs = b.read(0, 10, usize::MAX).unwrap();
        assert_eq!(recs[0].stories.len(), 2);
        assert_eq!(DirStatus::read(dir.path()).unwrap().redrive_pending, 0);
    }
}
