//! Randomness behind a trait, so that tests are deterministic: stroke ids and reconnect jitter
//! both draw from an [`Entropy`] the app seeds once from the browser's CSPRNG.

use kokuban_protocol::StrokeId;
use uuid::Uuid;

/// A source of random 64-bit words.
pub trait Entropy {
    /// The next random word.
    fn next_u64(&mut self) -> u64;

    /// A uniform float in `0.0..1.0`.
    fn unit(&mut self) -> f64 {
        // The top 53 bits fill a double's mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// xoshiro256**: small, fast and statistically sound. Seeded with 256 bits from the browser's
/// `crypto.getRandomValues`, its stroke ids are as unlikely to collide as random UUIDs need to
/// be (ids only have to be unique within a room).
#[derive(Debug, Clone)]
pub struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    /// A generator from 32 seed bytes. An all-zero seed (the one state xoshiro cannot leave)
    /// is replaced by a fixed non-zero one.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut s = [0u64; 4];
        for (i, word) in s.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&seed[i * 8..i * 8 + 8]);
            *word = u64::from_le_bytes(b);
        }
        if s == [0; 4] {
            s = [0x9e37_79b9_7f4a_7c15, 1, 2, 3];
        }
        Self { s }
    }

    /// A generator seeded from one word (tests).
    pub fn seeded(seed: u64) -> Self {
        // SplitMix64 spreads one word over the four of state.
        let mut x = seed;
        let mut s = [0u64; 4];
        for word in &mut s {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *word = z ^ (z >> 31);
        }
        Self { s }
    }
}

impl Entropy for Xoshiro256 {
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

/// A fresh random (version 4) stroke id.
pub fn new_stroke_id(rng: &mut dyn Entropy) -> StrokeId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    StrokeId(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// The nil id, for tests that need a fixed one.
pub fn stroke_id_from(n: u128) -> StrokeId {
    StrokeId(Uuid::from_u128(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_generators_repeat_and_ids_are_v4() {
        let mut a = Xoshiro256::seeded(7);
        let mut b = Xoshiro256::seeded(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let id = new_stroke_id(&mut a);
        assert_eq!(id.0.get_version_num(), 4);
        assert_ne!(new_stroke_id(&mut a), id);
        let u = a.unit();
        assert!((0.0..1.0).contains(&u));
        assert_ne!(Xoshiro256::from_seed([0; 32]).next_u64(), 0);
    }
}
