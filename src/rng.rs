//! A tiny seeded random generator with the same sequence on every platform: the phantom, prompt
//! simulation and training augmentation draw from it, so that a seed reproduces a result exactly.

use std::f64::consts::TAU;

/// SplitMix64: a tiny generator with the same sequence on every platform.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), from the top 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// `value` scaled by a random factor within 1 +- `fraction`.
    pub fn vary(&mut self, value: f64, fraction: f64) -> f64 {
        value * self.range(1.0 - fraction, 1.0 + fraction)
    }

    /// Standard normal by Box-Muller; 1 - u keeps the logarithm finite.
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

impl SplitMix64 {
    /// Uniform integer in [0, n); n > 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n
    }
}
