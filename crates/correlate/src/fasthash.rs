//! The hasher of the engine's maps. Their keys are integers: link keys and event keys that are already
//! hashes, slot counters, and sensor-name hashes (the clock estimates' pairs). SipHash, the standard maps'
//! default, was a fifth of the time spent adding an event, and in the clock estimates ~8% of the
//! correlator's instructions. This one mixes each integer with one folded 64×64→128-bit multiply. The seed is random per
//! process, and the fold brings the product's high half into the bucket bits, so keys crafted from input
//! cannot be aimed at one bucket. Nothing iterates these maps into an output, so the seed changes no
//! result (the engine stays deterministic).

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

pub type Map<K, V> = std::collections::HashMap<K, V, Seeded>;
pub type Set<T> = std::collections::HashSet<T, Seeded>;

#[derive(Clone, Copy, Debug)]
pub struct Seeded(u64);

impl Default for Seeded {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        Seeded(
            *SEED.get_or_init(|| {
                std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
            }),
        )
    }
}

impl BuildHasher for Seeded {
    type Hasher = Folded;

    fn build_hasher(&self) -> Folded {
        Folded(self.0)
    }
}

pub struct Folded(u64);

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

impl Folded {
    #[inline]
    fn mix(&mut self, v: u64) {
        let p = u128::from(self.0 ^ v) * u128::from(MUL);
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
}

impl Hasher for Folded {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(b));
        }
        self.mix(bytes.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.mix(u64::from(v));
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.mix(u64::from(v));
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }

    #[inline]
    fn write_u128(&mut self, v: u128) {
        self.mix(v as u64);
        self.mix((v >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.mix(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differing_only_in_high_bits_spread_over_buckets() {
        let s = Seeded::default();
        let buckets: std::collections::HashSet<u64> =
            (0..1024u64).map(|i| s.hash_one(i << 40) & 1023).collect();
        assert!(buckets.len() > 500, "{} of 1024 buckets", buckets.len());
    }
}
