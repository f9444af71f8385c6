//! Feature hashing for SQLGuard layer 2: the normalised value's byte 1..=[`MAX_N`]-grams,
//! with start and end markers, hashed into [`BUCKETS`] buckets.
//!
//! This one module is what training and inference share, so a value can never be hashed one
//! way when the model learns and another way when it judges. The constants are also written
//! into the weights file ([`FeatureParams`]) and checked at load: weights trained with other
//! hashing parameters are refused at boot instead of silently scoring garbage.
//!
//! Bytes rather than characters: the normaliser has already folded case, encodings and
//! fullwidth forms, every SQL token is ASCII, and bytes need no UTF-8 decoding on the hot path.
//! Markers make "the value starts with a quote" (`\x02'`) a feature of its own, which is
//! where a breakout lives.

/// Number of hash buckets (a power of two).
pub const BUCKETS: usize = 4096;
/// Longest n-gram, in bytes.
pub const MAX_N: usize = 4;
/// Only this many bytes of the normalised value are hashed: an injection must be SQL from its
/// breakout on, which sits at the front, and the bound keeps a 10 kB body as cheap as a tweet.
pub const MAX_BYTES: usize = 1024;
/// Seed of the hash, so a retrained model with a new seed is a different feature space.
pub const HASH_SEED: u64 = 0x5e17_1a2e_0000_0001;
/// Version of this feature scheme; bump it when anything above or the hash changes.
pub const FEATURE_VERSION: u32 = 1;

const START: u8 = 0x02;
const END: u8 = 0x03;
const BUCKET_BITS: u32 = BUCKETS.trailing_zeros();

/// The hashing parameters as stored beside the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeatureParams {
    /// [`FEATURE_VERSION`].
    pub version: u32,
    /// [`BUCKETS`].
    pub buckets: u32,
    /// [`MAX_N`].
    pub max_n: u32,
    /// [`MAX_BYTES`].
    pub max_bytes: u32,
    /// Low half of [`HASH_SEED`].
    pub seed_lo: u32,
    /// High half of [`HASH_SEED`].
    pub seed_hi: u32,
}

impl FeatureParams {
    /// The parameters this build hashes with.
    pub const CURRENT: FeatureParams = FeatureParams {
        version: FEATURE_VERSION,
        buckets: BUCKETS as u32,
        max_n: MAX_N as u32,
        max_bytes: MAX_BYTES as u32,
        seed_lo: HASH_SEED as u32,
        seed_hi: (HASH_SEED >> 32) as u32,
    };

    /// As the `u32` vector stored in the weights file.
    pub const fn to_array(self) -> [u32; 6] {
        [
            self.version,
            self.buckets,
            self.max_n,
            self.max_bytes,
            self.seed_lo,
            self.seed_hi,
        ]
    }

    /// From the stored vector; `None` if it has the wrong length.
    pub fn from_slice(v: &[u32]) -> Option<FeatureParams> {
        match *v {
            [version, buckets, max_n, max_bytes, seed_lo, seed_hi] => Some(FeatureParams {
                version,
                buckets,
                max_n,
                max_bytes,
                seed_lo,
                seed_hi,
            }),
            _ => None,
        }
    }
}

/// Calls `emit(bucket)` once per n-gram of `normalized` (with markers); returns how many
/// n-grams there were (at least one: the empty value still has its two markers).
#[inline]
pub fn for_each_bucket(normalized: &str, mut emit: impl FnMut(usize)) -> usize {
    let bytes = normalized.as_bytes();
    let body = &bytes[..bytes.len().min(MAX_BYTES)];
    let len = body.len() + 2;
    let at = |i: usize| -> u8 {
        if i == 0 {
            START
        } else if i == len - 1 {
            END
        } else {
            body[i - 1]
        }
    };
    let mut count = 0;
    for start in 0..len {
        let mut h = HASH_SEED;
        for i in start..len.min(start + MAX_N) {
            h = (h ^ u64::from(at(i))).wrapping_mul(0x0000_0100_0000_01b3);
            emit(bucket(h));
            count += 1;
        }
    }
    count
}

#[inline]
fn bucket(h: u64) -> usize {
    // Fibonacci hashing: FNV's low bits are weak, the top bits of this product are not.
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - BUCKET_BITS)) as usize
}

/// Scale applied to the bucket counts: 1/√(number of n-grams), so long and short values land
/// on comparable magnitudes.
#[inline]
pub fn scale(count: usize) -> f32 {
    1.0 / (count.max(1) as f32).sqrt()
}

/// The dense feature row of a value (what training feeds the model), added into `row`, which
/// must be [`BUCKETS`] long and zeroed.
pub fn dense_into(normalized: &str, row: &mut [f32]) {
    let mut hits = Vec::with_capacity(normalized.len().min(MAX_BYTES) * MAX_N + 8);
    let count = for_each_bucket(normalized, |b| hits.push(b));
    let s = scale(count);
    for b in hits {
        if let Some(x) = row.get_mut(b) {
            *x += s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_ngram_with_markers() {
        // "ab" → markers make 4 positions: 4 unigrams, 3 bigrams, 2 trigrams, 1 four-gram.
        assert_eq!(for_each_bucket("ab", |_| {}), 10);
        assert_eq!(for_each_bucket("", |_| {}), 3);
    }

    #[test]
    fn buckets_are_in_range_and_long_values_are_capped() {
        let long = "x' or 1=1 ".repeat(500);
        let mut max = 0;
        let n = for_each_bucket(&long, |b| max = max.max(b));
        assert!(max < BUCKETS);
        assert_eq!(n, (MAX_BYTES + 2) * MAX_N - (1 + 2 + 3));
    }

    #[test]
    fn params_round_trip() {
        let p = FeatureParams::CURRENT;
        assert_eq!(FeatureParams::from_slice(&p.to_array()), Some(p));
        assert_eq!(FeatureParams::from_slice(&[1, 2]), None);
    }
}
