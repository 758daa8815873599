//! A replay's input, cut into chunks of whole lines for the ingest threads.
//!
//! A regular file whose records stand alone (no header lines) is mapped into memory and its chunks are
//! ranges of the mapping: read into buffers, its bytes were copied once by the kernel (~0.24 s of a
//! 1M-event replay's reading thread, 768 MB) and the chunk buffers cycled through the ingest threads. A
//! mapping costs a page fault per 64 KiB read instead (the kernel maps the pages around a fault). Pages a
//! chunk alone covers are released once the chunk is stored, so the process never holds more of the file
//! than the chunks in flight. Formats with header lines (each chunk gets the header in force copied in
//! front), pipes and devices, and `--no-mmap` read into buffers.
//!
//! A mapped file must not shrink while the replay runs: reading a page past its new end kills the process
//! (`SIGBUS`). `--no-mmap` is for inputs something else may truncate.

use anyhow::Context;
use indicatif::ProgressBar;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storyline_parse::HeaderContext;

/// Lines per chunk handed to an ingest thread: one durable append each.
pub(super) const CHUNK_BYTES: usize = 4 << 20;

pub(super) struct Chunk {
    pub source: Arc<str>,
    /// The input line the body's first line is (a repeated header line counts back from the text).
    pub first_line: u64,
    /// How many `\n` the body holds (its header prefix included).
    pub line_ends: usize,
    pub body: Body,
}

pub(super) enum Body {
    /// Read into a buffer: the header in force (if any), then the lines.
    Read(Vec<u8>),
    /// Lines of a mapped file.
    Mapped {
        map: Arc<memmap2::Mmap>,
        range: Range<usize>,
    },
}

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Body::Read(buf) => buf,
            Body::Mapped { map, range } => &map[range.clone()],
        }
    }
}

impl Body {
    /// Called once the chunk is stored: returns a buffer for reuse, or releases the mapped pages that only
    /// this chunk covers (the file stays in the page cache; only this process's mapping of it goes).
    pub fn done(self, spare: &crossbeam_channel::Sender<Vec<u8>>) {
        match self {
            Body::Read(buf) => {
                let _ = spare.try_send(buf);
            }
            Body::Mapped { map, range } => {
                let page = page_size();
                let start = range.start.next_multiple_of(page);
                let end = range.end / page * page;
                if start < end {
                    // SAFETY: the mapping is a read-only, shared mapping of a file. Dropping its pages
                    // loses nothing: were they read again they would be faulted back in from the file.
                    // No other chunk reads these pages (whole pages inside this chunk's range only).
                    let _ = unsafe {
                        map.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            start,
                            end - start,
                        )
                    };
                }
            }
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| *s > 0)
        .unwrap_or(4096)
}

/// Sends each input's chunks in order, every file numbered from line 1.
pub(super) fn read_chunks(
    inputs: &[PathBuf],
    headers: Option<HeaderContext>,
    allow_mmap: bool,
    tx: &crossbeam_channel::Sender<Chunk>,
    spare: &crossbeam_channel::Receiver<Vec<u8>>,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    for path in inputs {
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening input {}", path.display()))?;
        let source: Arc<str> = Arc::from(format!("replay:{}", path.display()));
        let map = if allow_mmap && headers.is_none() {
            map_file(&file)
        } else {
            None
        };
        match map {
            Some(map) => send_mapped(map, &source, tx, bar)?,
            // Each file starts with no header in force.
            None => read_file(file, path, &source, headers.clone(), tx, spare, bar)?,
        }
    }
    Ok(())
}

/// The file mapped, if it is a non-empty regular file the OS lets us map.
fn map_file(file: &std::fs::File) -> Option<Arc<memmap2::Mmap>> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    // SAFETY: the mapping is only read. Its contents change if another process writes the file meanwhile
    // (a chunk would then hold what was read at that moment, as a read would), and a truncation makes
    // reading past the new end fault: the module docs and `--no-mmap` say so.
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(Arc::new(map))
}

fn send_mapped(
    map: Arc<memmap2::Mmap>,
    source: &Arc<str>,
    tx: &crossbeam_channel::Sender<Chunk>,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut line_no = 1u64;
    for range in line_chunks(&map, CHUNK_BYTES) {
        let text = &map[range.clone()];
        let first_line = line_no;
        let line_ends = count_lines(text, &mut line_no);
        bar.inc(text.len() as u64);
        let chunk = Chunk {
            source: source.clone(),
            first_line,
            line_ends,
            body: Body::Mapped {
                map: map.clone(),
                range,
            },
        };
        if tx.send(chunk).is_err() {
            anyhow::bail!("ingest stopped early");
        }
    }
    Ok(())
}

/// The `\n`s in `text`, a chunk's lines; moves `line_no` past them (a last line without one counts too).
fn count_lines(text: &[u8], line_no: &mut u64) -> usize {
    let ends = memchr::memchr_iter(b'\n', text).count();
    *line_no += ends as u64 + u64::from(!text.ends_with(b"\n"));
    ends
}

/// `data` cut into consecutive ranges of whole lines, each at least `target` bytes where the data allows
/// (a line longer than that makes its range longer) and ending just after a `\n`, the last at the end of
/// the data.
fn line_chunks(data: &[u8], target: usize) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= data.len() {
            return None;
        }
        let limit = start.saturating_add(target).min(data.len());
        let end = if limit == data.len() {
            limit
        } else {
            match memchr::memrchr(b'\n', &data[start..limit]) {
                Some(at) => start + at + 1,
                None => {
                    memchr::memchr(b'\n', &data[limit..]).map_or(data.len(), |at| limit + at + 1)
                }
            }
        };
        let range = start..end;
        start = end;
        Some(range)
    })
}

/// Reads the file in chunks of whole lines straight into buffers the ingest threads hand back: a fresh
/// 4 MiB buffer per chunk (and a second copy out of a `BufReader`) cost the reader more in page faults
/// and copies than the read itself.
fn read_file(
    mut file: std::fs::File,
    path: &Path,
    source: &Arc<str>,
    mut headers: Option<HeaderContext>,
    tx: &crossbeam_channel::Sender<Chunk>,
    spare: &crossbeam_channel::Receiver<Vec<u8>>,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut line_no = 1u64;
    // The start of a line the previous chunk ended inside.
    let mut carry: Vec<u8> = Vec::new();
    let mut eof = false;
    while !eof {
        let mut body = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES + 4096));
        body.clear();
        body.extend_from_slice(headers.as_ref().map_or(&[][..], |h| h.prefix()));
        let prefix = body.len();
        body.extend_from_slice(&carry);
        carry.clear();
        // Read until the chunk is full and holds a line end (a line longer than a chunk makes it
        // grow), or the file ends. `cut`: where the chunk's last whole line ends.
        let cut = loop {
            let want = (prefix + CHUNK_BYTES)
                .saturating_sub(body.len())
                .max(64 << 10);
            let n = (&mut file)
                .take(want as u64)
                .read_to_end(&mut body)
                .with_context(|| format!("reading {} after line {line_no}", path.display()))?;
            if n < want {
                eof = true;
                break body.len();
            }
            if body.len() >= prefix + CHUNK_BYTES {
                if let Some(at) = memchr::memrchr(b'\n', &body[prefix..]) {
                    break prefix + at + 1;
                }
            }
        };
        carry.extend_from_slice(&body[cut..]);
        body.truncate(cut);
        let text = &body[prefix..];
        if text.is_empty() {
            break;
        }
        let repeated = memchr::memchr_iter(b'\n', &body[..prefix]).count();
        let first_line = line_no - repeated as u64;
        let text_ends = count_lines(text, &mut line_no);
        if let Some(h) = headers.as_mut() {
            h.observe_lines(text);
        }
        bar.inc(text.len() as u64);
        let chunk = Chunk {
            source: source.clone(),
            first_line,
            line_ends: repeated + text_ends,
            body: Body::Read(body),
        };
        if tx.send(chunk).is_err() {
            anyhow::bail!("ingest stopped early");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The ranges tile the data, each ends at a line end (but the last), and none is cut short of the
        /// target while a line end lies beyond it.
        #[test]
        fn line_chunks_tile_the_data_at_line_ends(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'x')], 0..200),
            target in 1usize..40,
        ) {
            let ranges: Vec<_> = line_chunks(&data, target).collect();
            let mut at = 0;
            for (i, r) in ranges.iter().enumerate() {
                prop_assert_eq!(r.start, at);
                prop_assert!(r.end > r.start);
                let last = i + 1 == ranges.len();
                if !last {
                    prop_assert_eq!(data[r.end - 1], b'\n');
                    // Shorter than the target only if no line end could have made it longer.
                    if r.len() < target {
                        prop_assert!(!data[r.end..(r.start + target).min(data.len())].contains(&b'\n'));
                    }
                }
                at = r.end;
            }
            prop_assert_eq!(at, data.len());
        }
    }

    fn chunks_of(path: &Path, allow_mmap: bool) -> Vec<(u64, usize, Vec<u8>, bool)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (spare_tx, spare_rx) = crossbeam_channel::unbounded();
        read_chunks(
            &[path.to_path_buf()],
            None,
            allow_mmap,
            &tx,
            &spare_rx,
            &ProgressBar::hidden(),
        )
        .unwrap();
        drop(tx);
        rx.iter()
            .map(|c| {
                let mapped = matches!(c.body, Body::Mapped { .. });
                let out = (c.first_line, c.line_ends, c.body.to_vec(), mapped);
                c.body.done(&spare_tx);
                out
            })
            .collect()
    }

    #[test]
    fn a_mapped_file_gives_the_chunks_a_read_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.ndjson");
        // Lines of varied length, a few longer than a page, over several chunks; no final newline.
        let mut data = Vec::new();
        let mut i = 0u64;
        while data.len() < 3 * CHUNK_BYTES + 12345 {
            let len = (i * 7919) % 9000;
            data.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len as usize));
            data.push(b'\n');
            i += 1;
        }
        data.extend_from_slice(b"last line");
        std::fs::write(&path, &data).unwrap();

        let mapped = chunks_of(&path, true);
        let read = chunks_of(&path, false);
        assert!(mapped.iter().all(|c| c.3), "a regular file is mapped");
        assert!(read.iter().all(|c| !c.3));
        assert!(mapped.len() >= 3, "{} chunks", mapped.len());
        let strip = |v: &[(u64, usize, Vec<u8>, bool)]| {
            v.iter()
                .map(|(l, e, b, _)| (*l, *e, b.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&mapped), strip(&read));
        let joined: Vec<u8> = mapped.iter().flat_map(|c| c.2.clone()).collect();
        assert_eq!(joined, data);
        // Line numbers: each chunk's first line follows the previous chunk's lines.
        let mut line = 1;
        for (first, ends, _, _) in &mapped {
            assert_eq!(*first, line);
            line += *ends as u64;
        }
    }

    #[test]
    fn an_empty_file_gives_no_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        assert!(chunks_of(&path, true).is_empty());
    }
}
