//! Frames: the records one append wrote to one (shard, bucket), stored as a single value. Both the
//! `events` keyspace (encoded events, read by [`super::buckets`]) and the `payloads` keyspace (raw
//! records) hold frames, their records in event-key order.
//!
//! One key per record cost a memtable insert, a journal entry and a table or blob-file entry per event.
//! One value per (append, shard, bucket) made a 1M-event replay ~15% faster for payloads
//! (docs/benchmarks.md, seventh sitting) and again faster for events (eighth sitting).
//!
//! Layout: `FRAME_V1`, the record count (u32 LE), then per record its event key (u128 BE) and length
//! (u32 LE), then the records back to back. Payload frames are written compressed
//! ([`encode_compressed`]): `FRAME_ZSTD`, the length of the `FRAME_V1` frame (u32 LE), then that frame as
//! one zstd frame. Stores written before hold `FRAME_LZ4` frames, the same with one LZ4 block instead;
//! they are read as they are. The frame's key is the (shard, bucket) key followed by the append's sequence
//! number, so frames sort in the order appends began: of two concurrent appends of one key into one
//! bucket (a record re-sent while its first send is in flight) the later-numbered one is read back, its
//! event and its payload alike.

use storyline_model::EventKey;

const FRAME_V1: u8 = 1;
const FRAME_LZ4: u8 = 2;
const FRAME_ZSTD: u8 = 3;
/// zstd's fastest standard level, the base that [`compressor`] tunes further. On a replay's ingest
/// threads it took the CPU LZ4 took, for frames half the size (docs/benchmarks.md, fourteenth sitting);
/// higher levels cost more time than the bytes they save, and the negative ("fast") levels cost the
/// kernel more than they spared (seventeenth sitting).
const ZSTD_LEVEL: i32 = 1;
const HEADER: usize = 1 + 4;
const ENTRY: usize = 16 + 4;

/// Encodes the records `(key, raw)` into one frame, written straight into the store's value type: a
/// `Vec` handed to the store was copied once more into its own buffer, and frames carry every raw record.
pub fn encode<'a>(
    records: impl ExactSizeIterator<Item = (EventKey, &'a [u8])> + Clone,
) -> fjall::Slice {
    let bytes: usize = records.clone().map(|(_, r)| r.len()).sum();
    let mut head = Vec::with_capacity(HEADER + records.len() * ENTRY);
    write_head(records.clone(), &mut head);
    let len = head.len() + bytes;
    let mut reader = Pieces {
        current: &head,
        rest: records.map(|(_, raw)| raw),
    };
    fjall::Slice::from_reader(&mut reader, len).expect("reading from memory cannot fail")
}

/// As [`encode`], compressed. Raw records are most of what an ingest writes (a 1M-event replay: ~770 MB
/// of input, 65 MB of compressed frames). Left to the store, they went uncompressed through its journal
/// (its compression there cost more than it saved: the memtable flush compresses blob files again) and
/// were compressed into blob files later; compressed once here, the journal write, its fsync and the flush
/// handle a fraction of the bytes and the `payloads` keyspace stores them as they are.
pub fn encode_compressed<'a>(
    records: impl ExactSizeIterator<Item = (EventKey, &'a [u8])> + Clone,
) -> fjall::Slice {
    thread_local! {
        // Reused: a fresh frame-sized buffer per frame was a page fault per 4 KiB written, and a fresh
        // compression context allocates and clears its tables.
        static SCRATCH: std::cell::RefCell<Option<Scratch>> = const { std::cell::RefCell::new(None) };
    }
    SCRATCH.with_borrow_mut(|scratch| {
        let Scratch {
            plain,
            packed,
            zstd,
        } = scratch.get_or_insert_with(Scratch::new);
        plain.clear();
        write_head(records.clone(), plain);
        for (_, raw) in records {
            plain.extend_from_slice(raw);
        }
        let need = HEADER + zstd::zstd_safe::compress_bound(plain.len());
        if packed.len() < need {
            packed.resize(need, 0);
        }
        packed[0] = FRAME_ZSTD;
        packed[1..HEADER].copy_from_slice(&(plain.len() as u32).to_le_bytes());
        let n = zstd
            .compress_to_buffer(plain, &mut packed[HEADER..])
            .expect("the output holds the worst case");
        let frame = fjall::Slice::from(&packed[..HEADER + n]);
        // A frame of a few huge records must not stay pinned to the thread (the service ingests on a
        // pool of many).
        if plain.capacity() > SCRATCH_KEPT {
            (*plain, *packed) = (Vec::new(), Vec::new());
        }
        frame
    })
}

/// A thread's buffers and compression context for [`encode_compressed`]. A level-1 context holds ~300 KiB
/// once it has compressed a frame of a few hundred KB (measured), and is freed with its thread (the
/// service's ingest runs on tokio's blocking pool, whose idle threads end).
struct Scratch {
    plain: Vec<u8>,
    packed: Vec<u8>,
    zstd: zstd::bulk::Compressor<'static>,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            plain: Vec::new(),
            packed: Vec::new(),
            zstd: compressor(),
        }
    }
}

/// Level 1 with a smaller hash table (13 bits, not 14) and matches of at least 7 bytes (not 6): on the
/// generator's records cut into 256 KiB frames, compression ran 530 → 580 MB/s (`zstd -b1 -B256K`, two
/// rounds) for frames 0.02% larger. The table fits the core's cache better, and short matches in JSON
/// text (a quote, a comma and a few letters) save little. Decompression needs no setting: it reads the
/// frame's own parameters.
fn compressor() -> zstd::bulk::Compressor<'static> {
    use zstd::zstd_safe::CParameter;
    let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("a standard zstd level");
    c.set_parameter(CParameter::HashLog(13))
        .expect("hash log within zstd's bounds");
    c.set_parameter(CParameter::MinMatch(7))
        .expect("minimum match within zstd's bounds");
    c
}

/// Largest frame whose scratch buffers a thread keeps for the next one.
const SCRATCH_KEPT: usize = 4 << 20;

/// The frame's `FRAME_V1` head: marker, record count, then each record's key and length.
fn write_head<'a>(records: impl ExactSizeIterator<Item = (EventKey, &'a [u8])>, out: &mut Vec<u8>) {
    out.push(FRAME_V1);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (key, raw) in records {
        out.extend_from_slice(&key.0.to_be_bytes());
        out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    }
}

/// The frame as written by [`encode`]: a compressed frame is expanded, any other borrowed as it is.
pub fn expanded(frame: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, &'static str> {
    let marker = frame.first().copied();
    if marker != Some(FRAME_ZSTD) && marker != Some(FRAME_LZ4) {
        return Ok(std::borrow::Cow::Borrowed(frame));
    }
    let len = frame
        .get(1..HEADER)
        .map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize)
        .ok_or("compressed payload frame too short")?;
    let packed = &frame[HEADER..];
    if marker == Some(FRAME_ZSTD) {
        return expand_zstd(packed, len).map(std::borrow::Cow::Owned);
    }
    // LZ4 expands at most ~255-fold: a larger claim is damage, not a reason to allocate gigabytes.
    if len > packed.len().saturating_mul(255) {
        return Err("compressed payload frame claims an impossible length");
    }
    let mut plain = vec![0; len];
    match lz4_flex::block::decompress_into(packed, &mut plain) {
        Ok(n) if n == len => Ok(std::borrow::Cow::Owned(plain)),
        _ => Err("compressed payload frame does not expand to its length"),
    }
}

/// Expands a zstd frame that must hold exactly `len` bytes. zstd can shrink long runs by far more than
/// LZ4's bound, so the claimed length cannot be checked up front: the output grows only as the frame
/// really expands, and at most to `len` and one byte more, so damage can never make it allocate more.
fn expand_zstd(packed: &[u8], len: usize) -> Result<Vec<u8>, &'static str> {
    use std::io::Read;
    const DAMAGED: &str = "compressed payload frame does not expand to its length";
    let decoder = zstd::stream::read::Decoder::with_buffer(packed).map_err(|_| DAMAGED)?;
    let mut plain = Vec::with_capacity(len.min(packed.len().saturating_mul(16)));
    decoder
        .single_frame()
        .take(len as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|_| DAMAGED)?;
    if plain.len() != len {
        return Err(DAMAGED);
    }
    Ok(plain)
}

/// Reads a sequence of byte slices as one stream.
struct Pieces<'a, I> {
    current: &'a [u8],
    rest: I,
}

impl<'a, I: Iterator<Item = &'a [u8]>> std::io::Read for Pieces<'a, I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rest.next() {
                Some(next) => self.current = next,
                None => return Ok(0),
            }
        }
        let n = self.current.len().min(buf.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = &self.current[n..];
        Ok(n)
    }
}

/// The record stored under `key` in the frame (the last one if it holds several), `Err` if the frame is
/// malformed.
pub fn find(frame: &[u8], key: EventKey) -> Result<Option<&[u8]>, &'static str> {
    let mut found = None;
    for entry in entries(frame)? {
        let (k, raw) = entry?;
        if k == key {
            found = Some(raw);
        }
    }
    Ok(found)
}

/// The frame's records in the order they were written.
pub fn entries(
    frame: &[u8],
) -> Result<impl Iterator<Item = Result<(EventKey, &[u8]), &'static str>>, &'static str> {
    if frame.first() != Some(&FRAME_V1) || frame.len() < HEADER {
        return Err("not a payload frame");
    }
    let n = u32::from_le_bytes(frame[1..HEADER].try_into().expect("4 bytes")) as usize;
    let index_end = n
        .checked_mul(ENTRY)
        .and_then(|l| l.checked_add(HEADER))
        .filter(|&end| end <= frame.len())
        .ok_or("payload frame index runs past its end")?;
    let mut at = index_end;
    Ok((0..n).map(move |i| {
        let e = &frame[HEADER + i * ENTRY..HEADER + (i + 1) * ENTRY];
        let key = EventKey(u128::from_be_bytes(e[..16].try_into().expect("16 bytes")));
        let len = u32::from_le_bytes(e[16..].try_into().expect("4 bytes")) as usize;
        let raw = at
            .checked_add(len)
            .and_then(|end| frame.get(at..end))
            .ok_or("payload frame record runs past its end")?;
        at += len;
        Ok((key, raw))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_by_key_and_the_last_write_of_a_key_wins() {
        let records = [
            (EventKey(7), &b"first"[..]),
            (EventKey(3), &b""[..]),
            (EventKey(7), &b"second"[..]),
            (EventKey(u128::MAX), &b"max"[..]),
        ];
        let f = encode(records.iter().copied());
        assert_eq!(find(&f, EventKey(7)).unwrap(), Some(&b"second"[..]));
        assert_eq!(find(&f, EventKey(3)).unwrap(), Some(&b""[..]));
        assert_eq!(find(&f, EventKey(u128::MAX)).unwrap(), Some(&b"max"[..]));
        assert_eq!(find(&f, EventKey(4)).unwrap(), None);
        let all: Vec<_> = entries(&f).unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(all, records);
    }

    #[test]
    fn a_compressed_frame_expands_to_the_same_records() {
        let big = "x".repeat(10_000);
        let records = [
            (EventKey(7), big.as_bytes()),
            (EventKey(3), &b""[..]),
            (EventKey(7), &b"second"[..]),
        ];
        let packed = encode_compressed(records.iter().copied());
        assert!(packed.len() < 1_000, "compressed: {} bytes", packed.len());
        let plain = expanded(&packed).unwrap();
        assert_eq!(&*plain, &*encode(records.iter().copied()));
        assert_eq!(find(&plain, EventKey(7)).unwrap(), Some(&b"second"[..]));
        // A second, smaller frame through the same scratch buffers carries nothing of the first.
        let small = encode_compressed([(EventKey(1), &b"one"[..])].into_iter());
        let plain = expanded(&small).unwrap();
        assert_eq!(entries(&plain).unwrap().count(), 1);
        assert_eq!(find(&plain, EventKey(1)).unwrap(), Some(&b"one"[..]));
        // A frame larger than the scratch buffers a thread keeps, then a small one again.
        let huge: Vec<u8> = (0..(SCRATCH_KEPT + 1000) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let packed = encode_compressed([(EventKey(5), &huge[..])].into_iter());
        assert_eq!(
            find(&expanded(&packed).unwrap(), EventKey(5)).unwrap(),
            Some(&huge[..])
        );
        let again = encode_compressed([(EventKey(6), &b"six"[..])].into_iter());
        assert_eq!(
            find(&expanded(&again).unwrap(), EventKey(6)).unwrap(),
            Some(&b"six"[..])
        );
        // An uncompressed frame passes through unchanged.
        let v1 = encode([(EventKey(2), &b"two"[..])].into_iter());
        assert!(matches!(
            expanded(&v1).unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn frames_written_with_lz4_before_still_expand() {
        let text: String = (0..500).map(|i| format!("record {i};")).collect();
        let records = [(EventKey(9), text.as_bytes()), (EventKey(4), &b"four"[..])];
        let plain = encode(records.iter().copied());
        let mut lz4 = vec![FRAME_LZ4];
        lz4.extend_from_slice(&(plain.len() as u32).to_le_bytes());
        lz4.extend_from_slice(&lz4_flex::block::compress(&plain));
        assert_eq!(&*expanded(&lz4).unwrap(), &*plain);
        assert!(expanded(&lz4[..lz4.len() - 1]).is_err());
        // New frames are zstd's, and smaller.
        let zstd = encode_compressed(records.iter().copied());
        assert_eq!(zstd[0], FRAME_ZSTD);
        assert_eq!(&*expanded(&zstd).unwrap(), &*plain);
        assert!(zstd.len() < lz4.len(), "{} vs {}", zstd.len(), lz4.len());
    }

    #[test]
    fn a_damaged_compressed_frame_is_an_error_not_a_panic() {
        let text: String = (0..2_000).map(|i| format!("record {i};")).collect();
        let f = encode_compressed([(EventKey(1), text.as_bytes())].into_iter());
        for cut in 0..f.len() {
            let _ = expanded(&f[..cut]);
        }
        assert!(expanded(&f[..f.len() - 1]).is_err());
        let mut flipped = f.to_vec();
        for i in HEADER..flipped.len() {
            flipped[i] ^= 0x5a;
            let _ = expanded(&flipped).map(|p| find(&p, EventKey(1)).map(|r| r.map(<[u8]>::len)));
            flipped[i] ^= 0x5a;
        }
        let mut huge = f.to_vec();
        huge[1..HEADER].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(expanded(&huge).is_err());
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_panic() {
        let f = encode([(EventKey(1), &b"abcdef"[..])].into_iter());
        for cut in 0..f.len() {
            let _ = find(&f[..cut], EventKey(1));
        }
        assert!(find(&f[..f.len() - 1], EventKey(1)).is_err());
        assert!(find(b"", EventKey(1)).is_err());
        let mut huge = f.to_vec();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(find(&huge, EventKey(1)).is_err());
    }
}
