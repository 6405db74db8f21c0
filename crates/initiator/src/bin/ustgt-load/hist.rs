//! A log-linear latency histogram: 64 buckets per power of two (under 1.6% error), a few
//! kilobytes, one array increment per sample.

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any u64.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of nanosecond values.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let shift = e - SUB_BITS;
    let sub = (v >> shift) & (SUB - 1);
    ((u64::from(shift) + 1) * SUB + sub) as usize
}

/// The smallest value that falls in bucket `i`, and the bucket's width.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let shift = i / SUB - 1;
    let sub = i % SUB;
    ((SUB + sub) << shift, 1 << shift)
}

impl Histogram {
    /// Count one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
    }

    /// The value below which a fraction `p` of the counts lie (the middle of its bucket), or 0
    /// when empty.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let want = ((p * self.total as f64) as u64).min(self.total - 1);
        let mut acc = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            acc += c;
            if acc > want {
                let (lo, width) = bounds(i);
                return lo as f64 + (width as f64 - 1.0) / 2.0;
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once() {
        for v in (0..5000u64).chain([u64::MAX, 1 << 40, (1 << 40) - 1]) {
            let (lo, w) = bounds(index(v));
            assert!(lo <= v && v - lo < w, "{v} not in [{lo}, +{w})");
        }
        assert!(index(u64::MAX) < BUCKETS);
    }

    #[test]
    fn percentiles_within_bucket_precision() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(0.5), 0.0);
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.total, 10_000);
        let p50 = h.percentile(0.5);
        let p99 = h.percentile(0.99);
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.02, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.02, "p99 {p99}");
        let mut one = Histogram::default();
        one.record(7);
        assert_eq!(one.percentile(0.999), 7.0);
    }
}
