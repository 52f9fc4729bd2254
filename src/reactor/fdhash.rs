//! The hasher of the reactor's fd table.
//!
//! `HashMap`'s default SipHash-1-3 costs ~100 instructions per lookup of an
//! `i32` (callgrind, once per readiness event), a third of what the rest of
//! an event's bookkeeping costs. File descriptors are small integers the
//! kernel hands out, not attacker-chosen keys, so flooding resistance buys
//! nothing here: one multiplication by the 64-bit golden ratio spreads
//! them over both the low bits hashbrown indexes buckets with and the high
//! bits it keeps as tags.

use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default)]
pub struct FdHasher(u64);

impl Hasher for FdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write_i32(&mut self, n: i32) {
        self.0 = (n as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    /// Any other key shape (not used by the fd table): FNV-1a over the
    /// bytes, then the same spreading multiply.
    fn write(&mut self, bytes: &[u8]) {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ self.0;
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub type FdBuildHasher = BuildHasherDefault<FdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn distinct_fds_spread_and_round_trip() {
        let mut m: HashMap<i32, i32, FdBuildHasher> = HashMap::default();
        for fd in 0..10_000 {
            m.insert(fd, fd * 2);
        }
        for fd in 0..10_000 {
            assert_eq!(m.get(&fd), Some(&(fd * 2)));
        }
        assert_eq!(m.get(&10_000), None);
        let h = |fd: i32| {
            let mut s = FdHasher::default();
            s.write_i32(fd);
            s.finish()
        };
        // Neighbouring fds differ in the high (tag) bits too.
        assert_ne!(h(3) >> 57, h(4) >> 57);
    }
}
