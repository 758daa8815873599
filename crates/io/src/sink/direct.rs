//! Appending a large publication to a file straight to the device (`O_DIRECT`), past the page cache.
//!
//! A replay's end appends ~250 MB of story versions in one publication. Through the page cache the kernel
//! copies every byte into pages it first has to obtain; on a VM whose host takes back free guest memory
//! (free page reporting, as on the benchmark machine) each such page costs a host fault, and the copy was
//! a quarter of the CPU after the last input in such runs (docs/benchmarks.md, eleventh sitting). Written
//! direct, the bytes go from the encoder's buffer to the device and the kernel copies nothing; the
//! pages the output would have filled stay free for the process. Nobody re-reads the output soon, so
//! the cache loses nothing.
//!
//! Direct writes must start at a multiple of the device's block and be whole blocks from an aligned
//! buffer, so only the aligned middle of a publication is written direct: the bytes up to the first
//! block boundary after the file's end, and the last partial block, go through the ordinary (appending)
//! handle. A file system without `O_DIRECT` (tmpfs) or refusing the first write gets it all through
//! the ordinary handle.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment and size unit of a direct write: a multiple of every common logical block size.
pub(crate) const BLOCK: usize = 4096;

/// Appends a stream of byte runs, in order, to the end of a file.
pub(crate) struct Appender<'a> {
    file: &'a File,
    direct: Option<File>,
    /// File offset of the next direct write (a multiple of `BLOCK` once `head` is 0).
    at: u64,
    /// Bytes still to go through `file` before the file's end reaches a block boundary.
    head: usize,
    /// The bytes after the last whole block, not written yet.
    carry: Vec<u8>,
    /// Bytes written direct ([`Appender::finish`] returns them).
    direct_bytes: u64,
}

impl<'a> Appender<'a> {
    /// `file` is the ordinary handle, opened for appending, to the file at `path`. Without `direct`, all
    /// goes through `file`.
    pub(crate) fn new(file: &'a File, path: &Path, direct: bool) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        let direct = if direct {
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .ok()
        } else {
            None
        };
        let head = (BLOCK - (len % BLOCK as u64) as usize) % BLOCK;
        Ok(Self {
            file,
            direct,
            at: len + head as u64,
            head,
            carry: Vec::with_capacity(BLOCK),
            direct_bytes: 0,
        })
    }

    /// Appends `bytes` after everything put before. `staging` is the caller's reusable buffer for the
    /// aligned copy a direct write needs.
    pub(crate) fn put(&mut self, mut bytes: &[u8], staging: &mut Staging) -> std::io::Result<()> {
        if self.direct.is_none() {
            return self.file.write_all(bytes);
        }
        if self.head > 0 {
            let n = self.head.min(bytes.len());
            self.file.write_all(&bytes[..n])?;
            self.head -= n;
            bytes = &bytes[n..];
        }
        let whole = (self.carry.len() + bytes.len()) / BLOCK * BLOCK;
        if whole == 0 {
            self.carry.extend_from_slice(bytes);
            return Ok(());
        }
        let from_bytes = whole - self.carry.len();
        let block = staging.aligned(whole);
        block[..self.carry.len()].copy_from_slice(&self.carry);
        block[self.carry.len()..].copy_from_slice(&bytes[..from_bytes]);
        let direct = self.direct.as_ref().expect("checked above");
        match direct.write_all_at(block, self.at) {
            Ok(()) => {
                self.at += whole as u64;
                self.direct_bytes += whole as u64;
                self.carry.clear();
                self.carry.extend_from_slice(&bytes[from_bytes..]);
                Ok(())
            }
            // Refused before anything went direct (the file system takes no direct writes, or wants a
            // larger alignment): the rest goes through the ordinary handle, which appends where the
            // file ends.
            Err(e) if self.direct_bytes == 0 && e.kind() == std::io::ErrorKind::InvalidInput => {
                self.direct = None;
                self.file.write_all(&std::mem::take(&mut self.carry))?;
                self.file.write_all(bytes)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes what is left after the last whole block.
    pub(crate) fn finish(mut self) -> std::io::Result<u64> {
        self.file.write_all(&self.carry)?;
        Ok(self.direct_bytes)
    }
}

/// A reusable buffer that hands out `BLOCK`-aligned slices. Aligned within an ordinary vector, so it
/// needs no allocator of its own.
#[derive(Default)]
pub(crate) struct Staging(Vec<u8>);

impl Staging {
    fn aligned(&mut self, len: usize) -> &mut [u8] {
        if self.0.len() < len + BLOCK {
            // Room for growth: a slice's encoded size varies a little from one to the next.
            self.0 = vec![0; len + len / 4 + BLOCK];
        }
        let offset = self.0.as_ptr().align_offset(BLOCK);
        &mut self.0[offset..offset + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the file held and however the runs fall on block boundaries, the file ends up holding
    /// what was there and the runs, in order; on a file system that takes direct writes, the middle of
    /// a large enough stream went direct.
    #[test]
    fn runs_are_appended_in_order_whatever_the_alignment() {
        let dir = tempfile::tempdir().unwrap();
        for (existing, runs) in [
            (0usize, vec![10_000usize, 1, 4095, 4096, 30_000, 7]),
            (1000, vec![3096, 4096, 5000]),
            (4096, vec![100]),
            (5, vec![0, 0, 9000, 0]),
        ] {
            let path = dir.path().join(format!("out-{existing}"));
            let mut expected: Vec<u8> = (0..existing).map(|i| b'a' + (i % 26) as u8).collect();
            std::fs::write(&path, &expected).unwrap();
            let file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            let mut out = Appender::new(&file, &path, true).unwrap();
            let mut staging = Staging::default();
            for (n, len) in runs.iter().enumerate() {
                let run: Vec<u8> = (0..*len).map(|i| b'0' + ((i + n) % 10) as u8).collect();
                out.put(&run, &mut staging).unwrap();
                expected.extend_from_slice(&run);
            }
            let direct = out.finish().unwrap();
            assert_eq!(
                std::fs::read(&path).unwrap(),
                expected,
                "{existing} {runs:?}"
            );
            assert_eq!(direct % BLOCK as u64, 0);
            let total: usize = runs.iter().sum();
            if direct_writes_work(dir.path()) && total >= 3 * BLOCK {
                assert!(direct > 0, "{existing} {runs:?}: nothing went direct");
            }
        }
    }

    #[test]
    fn without_direct_everything_goes_through_the_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = std::fs::File::create(&path).unwrap();
        let mut out = Appender::new(&file, &path, false).unwrap();
        out.put(&[b'x'; 3 * BLOCK], &mut Staging::default())
            .unwrap();
        assert_eq!(out.finish().unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap().len(), 3 * BLOCK);
    }

    fn direct_writes_work(dir: &Path) -> bool {
        let path = dir.join("probe");
        let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
        else {
            return false;
        };
        let mut staging = Staging::default();
        f.write_all_at(staging.aligned(BLOCK), 0).is_ok()
    }
}
