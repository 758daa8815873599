//! Checkpoint parts: the keyed pieces of a worker's state (stories, index keys) that a checkpoint stores
//! or removes, encoded back to back in one buffer.
//!
//! One buffer rather than a `Vec` per part because a catch-up checkpoint has up to a million parts: the
//! correlator serializes each straight into it, and a store that keeps deltas as a log (the embedded
//! store) writes the buffer as it is. Hand-written framing, since no serde format lets a value be
//! written in place and its length patched afterwards. Layout per part: key length (u32 LE), key, tag
//! (1: stored, 0: removed), and for a stored part its value length (u32 LE) and value.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Parts {
    buf: Vec<u8>,
    count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartsError(pub &'static str);

impl fmt::Display for PartsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "checkpoint parts: {}", self.0)
    }
}

impl std::error::Error for PartsError {}

impl Parts {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            count: 0,
        }
    }

    /// Parts encoded by [`Parts::as_bytes`] (possibly several buffers joined), checked whole.
    pub fn from_bytes(buf: Vec<u8>) -> Result<Self, PartsError> {
        let mut count = 0;
        let mut it = Iter { rest: &buf };
        while let Some(part) = it.next_part() {
            part?;
            count += 1;
        }
        Ok(Self { buf, count })
    }

    /// Stores a part whose value `write` appends to the buffer it is given.
    pub fn put_with(&mut self, key: &[u8], write: impl FnOnce(&mut Vec<u8>)) {
        self.put_key(key, 1);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        write(&mut self.buf);
        let len = u32::try_from(self.buf.len() - at - 4).expect("a part under 4 GiB");
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// Stores `value` under `key` as postcard, serialized in place.
    pub fn put_postcard<T: serde::Serialize + ?Sized>(&mut self, key: &[u8], value: &T) {
        self.put_with(key, |buf| {
            append_postcard(value, buf).expect("checkpoint state serializes")
        });
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.put_with(key, |b| b.extend_from_slice(value));
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.put_key(key, 0);
    }

    fn put_key(&mut self, key: &[u8], tag: u8) {
        let len = u32::try_from(key.len()).expect("a part key under 4 GiB");
        self.buf.extend_from_slice(&len.to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.push(tag);
        self.count += 1;
    }

    /// How many parts are stored or removed.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Each part in order: key and value, `None` for a removal.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        let mut it = Iter { rest: &self.buf };
        // Checked when built (`from_bytes`) or written by `put*`: cannot fail here.
        std::iter::from_fn(move || it.next_part().map(|p| p.expect("parts checked when built")))
    }

    /// Applies the parts of an encoded buffer, in order, to a map of part key → value.
    pub fn apply_bytes(
        bytes: &[u8],
        to: &mut std::collections::HashMap<Vec<u8>, Vec<u8>>,
    ) -> Result<(), PartsError> {
        let mut it = Iter { rest: bytes };
        while let Some(part) = it.next_part() {
            match part? {
                (k, Some(v)) => to.insert(k.to_vec(), v.to_vec()),
                (k, None) => to.remove(k),
            };
        }
        Ok(())
    }
}

impl fmt::Debug for Parts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Parts({} parts, {} bytes)", self.count, self.buf.len())
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, Option<V>)> for Parts {
    fn from_iter<I: IntoIterator<Item = (K, Option<V>)>>(iter: I) -> Self {
        let mut parts = Parts::default();
        for (k, v) in iter {
            match v {
                Some(v) => parts.put(k.as_ref(), v.as_ref()),
                None => parts.remove(k.as_ref()),
            }
        }
        parts
    }
}

struct Iter<'a> {
    rest: &'a [u8],
}

type Part<'a> = (&'a [u8], Option<&'a [u8]>);

impl<'a> Iter<'a> {
    fn next_part(&mut self) -> Option<Result<Part<'a>, PartsError>> {
        if self.rest.is_empty() {
            return None;
        }
        Some(self.part())
    }

    fn part(&mut self) -> Result<Part<'a>, PartsError> {
        let key = self.chunk()?;
        let (&tag, rest) = self
            .rest
            .split_first()
            .ok_or(PartsError("truncated after a key"))?;
        self.rest = rest;
        match tag {
            1 => Ok((key, Some(self.chunk()?))),
            0 => Ok((key, None)),
            _ => Err(PartsError("unknown tag")),
        }
    }

    fn chunk(&mut self) -> Result<&'a [u8], PartsError> {
        let (len, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(PartsError("truncated length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(PartsError("truncated part"));
        }
        let (head, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }
}

/// Appends `value` as postcard to `buf`. `postcard::to_io` writes every byte through `io::Write`, which
/// made serializing checkpoints several times slower than pushing onto the vector; postcard's own vector
/// flavor cannot append to a buffer it does not own, hence this one.
pub fn append_postcard<T: serde::Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    postcard::serialize_with_flavor(value, Append(buf))
}

struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline(always)]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn delta() -> impl Strategy<Value = Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        prop::collection::vec(
            (
                prop::collection::vec(any::<u8>(), 0..6),
                prop::option::of(prop::collection::vec(any::<u8>(), 0..300)),
            ),
            0..20,
        )
    }

    proptest! {
        #[test]
        fn appended_postcard_is_postcard(
            prefix in proptest::collection::vec(any::<u8>(), 0..16),
            value in any::<(Vec<u8>, String, u64, Option<i64>, Vec<(u32, bool)>)>(),
        ) {
            let mut buf = prefix.clone();
            append_postcard(&value, &mut buf).unwrap();
            prop_assert_eq!(&buf[..prefix.len()], &prefix[..]);
            prop_assert_eq!(&buf[prefix.len()..], &postcard::to_allocvec(&value).unwrap()[..]);
        }

        #[test]
        fn parts_read_back_as_written(delta in delta()) {
            let parts: Parts = delta.iter().map(|(k, v)| (k, v.as_ref())).collect();
            prop_assert_eq!(parts.len(), delta.len());
            let back: Vec<_> = parts.iter().map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))).collect();
            prop_assert_eq!(&back, &delta);
            let reread = Parts::from_bytes(parts.as_bytes().to_vec()).unwrap();
            prop_assert_eq!(reread, parts);
        }

        #[test]
        fn applying_joined_buffers_equals_applying_each_delta(deltas in prop::collection::vec(delta(), 1..5)) {
            let mut direct = HashMap::new();
            let mut joined = Vec::new();
            for delta in &deltas {
                for (k, v) in delta {
                    match v {
                        Some(v) => { direct.insert(k.clone(), v.clone()); }
                        None => { direct.remove(k); }
                    }
                }
                let parts: Parts = delta.iter().map(|(k, v)| (k, v.as_ref())).collect();
                joined.extend_from_slice(parts.as_bytes());
            }
            let mut logged = HashMap::new();
            Parts::apply_bytes(&joined, &mut logged).unwrap();
            prop_assert_eq!(direct, logged);
        }

        #[test]
        fn a_cut_buffer_is_an_error_unless_cut_between_parts(cut in 0usize..60) {
            let mut parts = Parts::default();
            parts.put(b"story", &[7u8; 30]);
            parts.remove(b"gone");
            let bytes = parts.as_bytes();
            let cut = cut.min(bytes.len());
            let boundaries = [0, 4 + 5 + 1 + 4 + 30, bytes.len()];
            let r = Parts::from_bytes(bytes[..cut].to_vec());
            prop_assert_eq!(r.is_ok(), boundaries.contains(&cut));
        }
    }

    #[test]
    fn a_value_written_in_place_gets_its_length() {
        let mut parts = Parts::default();
        parts.put_with(b"k", |buf| buf.extend_from_slice(b"hello"));
        parts.put_with(b"empty", |_| {});
        let all: Vec<_> = parts.iter().collect();
        assert_eq!(
            all,
            vec![
                (&b"k"[..], Some(&b"hello"[..])),
                (&b"empty"[..], Some(&b""[..]))
            ]
        );
    }
}
