//! Labelled metrics with a bounded label set, fixed at start: a table of
//! atomics, one row per label value (a msg_id of `route.json`, a group, a
//! transport), sharded per thread like [`super::Counter`].
//!
//! Recording is a thread-local read, an index and one or two relaxed
//! atomic adds: no allocation, no hashing, no lock. Each shard is a
//! separate allocation padded to a cache line, so two threads recording
//! the same row never write the same line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{SHARDS, slot};

/// Upper bounds (seconds) of the latency histograms' buckets, the last
/// bucket being `+Inf`: 50 µs to 10 s, roughly ×2.5 apart.
pub(crate) const BUCKETS_S: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// The same bounds in nanoseconds, for the hot path.
const BUCKETS_NS: [u64; 16] = {
    let mut ns = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        ns[i] = (BUCKETS_S[i] * 1e9) as u64;
        i += 1;
    }
    ns
};

/// Columns of a histogram row: one per bucket, `+Inf`, and the sum in ns.
pub(crate) const HISTOGRAM_COLS: usize = BUCKETS_NS.len() + 2;

/// One thread's copy of a table.
#[repr(align(64))]
struct Shard(Box<[AtomicU64]>);

/// `rows × cols` relaxed counters, sharded per thread.
pub(crate) struct Table {
    cols: usize,
    rows: usize,
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl Table {
    /// A zeroed table.
    pub(crate) fn new(rows: usize, cols: usize) -> Table {
        // Rounded up to whole cache lines so that shards never share one.
        let len = (rows * cols).div_ceil(8) * 8;
        let shards = (0..SHARDS)
            .map(|_| Shard((0..len).map(|_| AtomicU64::new(0)).collect()))
            .collect();
        Table { cols, rows, shards }
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Adds `n` to cell (`row`, `col`); out-of-range cells are ignored.
    #[inline]
    pub(crate) fn add(&self, row: usize, col: usize, n: u64) {
        if row < self.rows && col < self.cols {
            if let Some(c) = self.shards[slot()].0.get(row * self.cols + col) {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Subtracts `n` (for gauges; a shard may wrap, the sum does not).
    #[inline]
    pub(crate) fn sub(&self, row: usize, col: usize, n: u64) {
        if row < self.rows && col < self.cols {
            if let Some(c) = self.shards[slot()].0.get(row * self.cols + col) {
                c.fetch_sub(n, Ordering::Relaxed);
            }
        }
    }

    /// The sum of cell (`row`, `col`) over the shards.
    pub(crate) fn get(&self, row: usize, col: usize) -> u64 {
        if row >= self.rows || col >= self.cols {
            return 0;
        }
        self.shards.iter().fold(0u64, |sum, s| {
            let v =
                s.0.get(row * self.cols + col)
                    .map_or(0, |c| c.load(Ordering::Relaxed));
            sum.wrapping_add(v)
        })
    }

    /// Records a duration in histogram row `row` (a table of
    /// [`HISTOGRAM_COLS`] columns).
    #[cfg(test)]
    pub(crate) fn observe(&self, row: usize, d: Duration) {
        self.observe_weighted(row, d, 1);
    }

    /// Records one observation standing for `weight` (a sample of one in
    /// `weight`): its bucket counts `weight`, the sum `weight` times it.
    pub(crate) fn observe_weighted(&self, row: usize, d: Duration, weight: u64) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS_NS.len());
        self.add(row, bucket, weight);
        self.add(row, HISTOGRAM_COLS - 1, ns.saturating_mul(weight));
    }

    /// A histogram row: cumulative counts per bucket (the last is `+Inf`,
    /// the count) and the sum in seconds.
    pub(crate) fn histogram(&self, row: usize) -> ([u64; BUCKETS_NS.len() + 1], f64) {
        let mut cumulative = [0u64; BUCKETS_NS.len() + 1];
        let mut total = 0u64;
        for (i, c) in cumulative.iter_mut().enumerate() {
            total = total.wrapping_add(self.get(row, i));
            *c = total;
        }
        let sum = self.get(row, HISTOGRAM_COLS - 1) as f64 / 1e9;
        (cumulative, sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let t = Table::new(2, HISTOGRAM_COLS);
        t.observe(1, Duration::from_micros(10));
        t.observe(1, Duration::from_micros(50));
        t.observe(1, Duration::from_millis(3));
        t.observe(1, Duration::from_secs(60));
        let (buckets, sum) = t.histogram(1);
        assert_eq!(buckets[0], 2, "<= 50us");
        assert_eq!(buckets[5], 2, "<= 2.5ms");
        assert_eq!(buckets[6], 3, "<= 5ms");
        assert_eq!(buckets[15], 3, "<= 10s");
        assert_eq!(buckets[16], 4, "+Inf");
        assert!((sum - 60.00306).abs() < 1e-6, "{sum}");
        assert_eq!(t.histogram(0).0[16], 0);
        // Out of range is ignored, not a panic.
        t.add(5, 0, 1);
        t.observe(9, Duration::ZERO);
        assert_eq!(t.get(5, 0), 0);
    }

    #[test]
    fn threads_sum_up() {
        let t = std::sync::Arc::new(Table::new(3, 2));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        t.add(2, 1, 1);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(t.get(2, 1), 4000);
        t.sub(2, 1, 1);
        assert_eq!(t.get(2, 1), 3999);
    }
}
