//! Bookkeeping of what the clients receive: latency histograms, exactly-once delivery per
//! receiver, and the order of sequenced ops.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram tracks exactly; anything above is recorded as this value (and
/// a run that gets there has failed long before).
const MAX_TRACKED_US: u64 = 60_000_000;

/// End-to-end latencies in microseconds, three significant digits.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    /// An empty histogram.
    pub fn new() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("static bounds are valid"))
    }

    /// Records one latency.
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.max(1));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Both have the same bounds, so adding cannot fail.
        self.0.add(&other.0).expect("histograms share their bounds");
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The percentiles reported everywhere.
    pub fn summary(&self) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.0.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.0.len(),
            mean_ms: self.0.mean() / 1000.0,
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            p999_ms: ms(self.0.value_at_quantile(0.999)),
            max_ms: ms(self.0.max()),
        }
    }

    /// The distribution as `(latency ms, fraction of messages at or below it)`, one point per
    /// distinct recorded bucket, for plotting.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        let total = self.0.len();
        if total == 0 {
            return Vec::new();
        }
        let mut below = 0u64;
        self.0
            .iter_recorded()
            .map(|v| {
                below += v.count_at_value();
                (
                    self.0.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
                    below as f64 / total as f64,
                )
            })
            .collect()
    }
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of messages.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Which batches one receiver got from one editor, to count losses, duplicates and
/// out-of-order deliveries. Batch numbers are dense from 0, so a bit set is exact and small
/// (a 60 Hz editor sends a few thousand batches in a run).
#[derive(Debug, Clone, Default)]
pub struct Deliveries {
    seen: Vec<u64>,
    highest: Option<u32>,
    /// Batches that arrived a second time.
    pub duplicates: u64,
    /// Batches that arrived after a later batch of the same editor.
    pub reordered: u64,
}

impl Deliveries {
    /// Notes the arrival of `batch`; returns false if it is a duplicate.
    pub fn arrive(&mut self, batch: u32) -> bool {
        let (word, bit) = (batch as usize / 64, batch % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= 1 << bit;
        match self.highest {
            Some(h) if batch < h => self.reordered += 1,
            _ => self.highest = Some(batch),
        }
        true
    }

    /// Whether `batch` arrived.
    pub fn has(&self, batch: u32) -> bool {
        self.seen
            .get(batch as usize / 64)
            .is_some_and(|w| w & (1 << (batch % 64)) != 0)
    }

    /// How many of `first..=last` never arrived.
    pub fn missing(&self, first: u32, last: u32) -> u64 {
        if first > last {
            return 0;
        }
        (first..=last).filter(|&b| !self.has(b)).count() as u64
    }
}

/// Checks that the sequence numbers one member sees in its room are gapless and increasing.
#[derive(Debug, Clone, Default)]
pub struct SeqCheck {
    last: Option<u64>,
    /// Times a seq skipped ahead (each counts the number of seqs skipped).
    pub gaps: u64,
    /// Seqs at or below one already seen.
    pub backwards: u64,
}

impl SeqCheck {
    /// Starts after `seq` (the position of the Welcome), or from nothing.
    pub fn starting_after(seq: Option<u64>) -> Self {
        Self {
            last: seq,
            ..Self::default()
        }
    }

    /// Notes the next seq, known by its low byte only (a batch of points by handle): the
    /// first seq after the last seen that ends in it.
    pub fn observe_low(&mut self, low: u8) {
        let next = self.last.map_or(1, |l| l + 1);
        let skipped = low.wrapping_sub(next as u8);
        self.observe(next + u64::from(skipped));
    }

    /// Notes the next seq.
    pub fn observe(&mut self, seq: u64) {
        match self.last {
            Some(last) if seq <= last => self.backwards += 1,
            Some(last) => {
                self.gaps += seq - last - 1;
                self.last = Some(seq);
            }
            // A fresh room's first op is seq 1; anything later means ops were missed.
            None => {
                self.gaps += seq.saturating_sub(1);
                self.last = Some(seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Latencies::new();
        for us in 1..=1000u64 {
            h.record(us * 10);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        // Three significant digits: each bucket is within 0.1 % of the value.
        assert!((s.p50_ms - 5.0).abs() < 0.01, "{s:?}");
        assert!((s.p90_ms - 9.0).abs() < 0.01, "{s:?}");
        assert!((s.p99_ms - 9.9).abs() < 0.01, "{s:?}");
        assert!((s.p999_ms - 9.99).abs() < 0.01, "{s:?}");
        assert!((s.max_ms - 10.0).abs() < 0.01, "{s:?}");
        let cdf = h.cdf();
        assert!(cdf.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(cdf.last().map(|p| p.1), Some(1.0));
        assert_eq!(Latencies::new().summary(), Summary::default());
    }

    #[test]
    fn merge_adds_counts_and_huge_values_saturate() {
        let mut a = Latencies::new();
        a.record(0);
        let mut b = Latencies::new();
        b.record(u64::MAX);
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert!(a.summary().max_ms >= 59_000.0);
    }

    #[test]
    fn deliveries_count_loss_duplicates_and_reordering() {
        let mut d = Deliveries::default();
        for b in [0, 1, 2, 5, 4, 4, 70, 3] {
            d.arrive(b);
        }
        assert_eq!(d.duplicates, 1);
        // 4 after 5, 3 after 70.
        assert_eq!(d.reordered, 2);
        assert_eq!(d.missing(0, 6), 1); // 6
        assert_eq!(d.missing(0, 70), 64); // 6..=69
        assert_eq!(d.missing(200, 201), 2);
        assert_eq!(d.missing(3, 2), 0);
    }

    #[test]
    fn seq_check_finds_gaps_and_backward_steps() {
        let mut s = SeqCheck::starting_after(Some(10));
        for q in [11, 12, 15, 15, 14, 16] {
            s.observe(q);
        }
        assert_eq!((s.gaps, s.backwards), (2, 2));
        let mut fresh = SeqCheck::starting_after(None);
        fresh.observe(1);
        fresh.observe(2);
        assert_eq!((fresh.gaps, fresh.backwards), (0, 0));
        let mut late = SeqCheck::starting_after(None);
        late.observe(3);
        assert_eq!(late.gaps, 2);
    }
}
