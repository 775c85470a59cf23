//! A bit stream of Exp-Golomb codes: how live point batches are packed (see [`crate::live`]).
//!
//! An order-`k` Exp-Golomb code writes `n + 2^k` in binary, preceded by as many zeros as it
//! has digits after the first, less `k`. Small numbers take few bits (order 0: 0 takes one
//! bit, 1 and 2 three, 3 to 6 five), and no number takes more than 65. Signed values are
//! zigzagged first (0, −1, 1, −2, … become 0, 1, 2, 3, …).

use serde::de::{self, SeqAccess};

/// The most zeros before a code's first one: a code of a `u32` needs at most 32.
const MAX_LEADING_ZEROS: u32 = 32;

/// Signed to unsigned, small magnitudes first.
pub(crate) fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(n: u32) -> i32 {
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

/// Bits written first into the high end of each byte.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    /// Bits not yet in `bytes`, in the low end.
    pending: u64,
    pending_bits: u32,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Writes the low `bits` bits of `value`, the highest first (`bits` ≤ 32).
    fn put(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 32);
        self.pending = (self.pending << bits) | (value & ((1u64 << bits) - 1));
        self.pending_bits += bits;
        while self.pending_bits >= 8 {
            self.pending_bits -= 8;
            self.bytes.push((self.pending >> self.pending_bits) as u8);
        }
        self.pending &= (1u64 << self.pending_bits) - 1;
    }

    /// Writes `n` in the order-`k` code.
    pub(crate) fn code(&mut self, n: u32, k: u32) {
        let v = u64::from(n) + (1u64 << k);
        let digits = 64 - v.leading_zeros();
        let zeros = digits - 1 - k;
        // At most 32 zeros, then at most 33 digits: in two parts, neither over 32 bits.
        self.put(0, zeros);
        if digits > 32 {
            self.put(v >> 32, digits - 32);
            self.put(v, 32);
        } else {
            self.put(v, digits);
        }
    }

    /// Writes `v` zigzagged in the order-`k` code.
    pub(crate) fn signed(&mut self, v: i32, k: u32) {
        self.code(zigzag(v), k);
    }

    /// The bytes, the last one filled with zeros.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.pending_bits > 0 {
            let fill = 8 - self.pending_bits;
            self.put(0, fill);
        }
        self.bytes
    }
}

/// Reads what a [`BitWriter`] wrote from the bytes of a serde sequence, one byte at a time, so
/// that the codes end the run themselves (no length before it).
pub(crate) struct BitReader<'a, A> {
    seq: &'a mut A,
    byte: u8,
    /// Bits of `byte` not yet read.
    left: u32,
    /// Bytes read so far, for error messages.
    read: usize,
}

impl<'a, 'de, A: SeqAccess<'de>> BitReader<'a, A> {
    pub(crate) fn new(seq: &'a mut A) -> Self {
        Self {
            seq,
            byte: 0,
            left: 0,
            read: 0,
        }
    }

    fn bit(&mut self) -> Result<u32, A::Error> {
        if self.left == 0 {
            self.byte = self
                .seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(self.read, &"a complete bit run"))?;
            self.read += 1;
            self.left = 8;
        }
        self.left -= 1;
        Ok(u32::from(self.byte >> self.left) & 1)
    }

    /// Reads a number in the order-`k` code; refuses one that does not fit a `u32`.
    pub(crate) fn code(&mut self, k: u32) -> Result<u32, A::Error> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros + k > MAX_LEADING_ZEROS {
                return Err(de::Error::custom("a bit code longer than any number"));
            }
        }
        let mut v = 1u64;
        for _ in 0..zeros + k {
            v = (v << 1) | u64::from(self.bit()?);
        }
        u32::try_from(v - (1u64 << k))
            .map_err(|_| de::Error::custom("a bit code longer than any number"))
    }

    /// Reads a zigzagged value in the order-`k` code.
    pub(crate) fn signed(&mut self, k: u32) -> Result<i32, A::Error> {
        self.code(k).map(unzigzag)
    }

    /// Checks that the bits left in the last byte read are the zeros that fill it.
    pub(crate) fn finish(self) -> Result<(), A::Error> {
        if u32::from(self.byte) & ((1u32 << self.left) - 1) != 0 {
            return Err(de::Error::custom("a bit run must end in zeros"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_puts_small_magnitudes_first() {
        let order: Vec<u32> = [0, -1, 1, -2, 2].into_iter().map(zigzag).collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        for v in [0, 1, -1, 77, -78, i32::MAX, i32::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn codes_have_the_lengths_of_exp_golomb() {
        let bits = |n: u32, k: u32| {
            let mut w = BitWriter::new();
            w.code(n, k);
            w.put(1, 1);
            let bytes = w.finish();
            // The marker bit after the code is the last one set.
            bytes.len() as u32 * 8 - bytes.last().unwrap().trailing_zeros() - 1
        };
        assert_eq!([0, 1, 2, 3, 6, 7].map(|n| bits(n, 0)), [1, 3, 3, 5, 5, 7]);
        assert_eq!([0, 1, 2, 5, 6].map(|n| bits(n, 1)), [2, 2, 4, 4, 6]);
        assert_eq!(bits(u32::MAX, 0), 65);
        assert_eq!(bits(u32::MAX, 3), 62);
    }
}
