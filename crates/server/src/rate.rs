//! Per-connection rate limiting: a token bucket, plus a count of what it dropped so that a
//! client which keeps hammering is disconnected rather than served errors forever.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        Self::with_rate(f64::from(rate_per_sec), burst, now)
    }

    /// A full bucket refilling at `rate` tokens per second (a fraction for slow ones).
    pub fn with_rate(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether the bucket would be full at `now` (it then behaves like a new one).
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.take_many(1, now)
    }

    /// Takes `n` tokens if there are that many (none otherwise).
    pub fn take_many(&mut self, n: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        let n = n as f64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Pass,
    /// Over the limit: drop the frame; `notify` says whether to send an error frame (at most
    /// one per second, so the errors do not become a flood of their own).
    Drop {
        /// Send a RateLimited error frame now.
        notify: bool,
    },
    /// Sustained abuse: close the connection (1008).
    Close,
}

/// The bucket and the abuse counter of one connection.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    bucket: TokenBucket,
    abuse_limit: u32,
    abuse_window: Duration,
    window_start: Instant,
    dropped_in_window: u32,
    last_notice: Option<Instant>,
}

impl RateLimiter {
    /// `rate_per_sec` sustained, `burst` on top; more than `abuse_limit` drops within
    /// `abuse_window` closes.
    pub fn new(
        rate_per_sec: u32,
        burst: u32,
        abuse_limit: u32,
        abuse_window: Duration,
        now: Instant,
    ) -> Self {
        Self {
            bucket: TokenBucket::new(rate_per_sec, burst, now),
            abuse_limit,
            abuse_window,
            window_start: now,
            dropped_in_window: 0,
            last_notice: None,
        }
    }

    /// Accounts for one incoming frame.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.bucket.take(now) {
            return Verdict::Pass;
        }
        if now.saturating_duration_since(self.window_start) > self.abuse_window {
            self.window_start = now;
            self.dropped_in_window = 0;
        }
        self.dropped_in_window += 1;
        if self.dropped_in_window > self.abuse_limit {
            return Verdict::Close;
        }
        let notify = self
            .last_notice
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if notify {
            self.last_notice = Some(now);
        }
        Verdict::Drop { notify }
    }
}

/// Token buckets per client address, for the WebSocket upgrade rate
/// ([`crate::Config::upgrades_per_ip_per_sec`]) and room creation
/// ([`crate::Config::rooms_per_ip_per_min`]).
///
/// Memory is bounded: a bucket that has refilled is the same as no bucket, so full ones are
/// forgotten whenever the map reaches [`PerAddress::MAX_ADDRESSES`]; if every one of them is
/// still draining (a flood from that many addresses), a new address is let through unmetered
/// rather than refused, since a per-address limit cannot stop a flood from that many addresses
/// anyway and legitimate clients must not pay for it.
#[derive(Debug)]
pub struct PerAddress {
    /// Tokens per second; 0 admits everything.
    rate: f64,
    burst: u32,
    buckets: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, TokenBucket>>,
}

impl PerAddress {
    /// Addresses tracked at most (a few MiB).
    pub const MAX_ADDRESSES: usize = 65_536;

    /// `rate_per_sec` sustained per address, `burst` on top; a rate of 0 admits everything.
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate_per_sec),
            burst,
            buckets: Default::default(),
        }
    }

    /// `per_minute` sustained per address, as many at once; 0 admits everything.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            rate: f64::from(per_minute) / 60.0,
            burst: per_minute,
            buckets: Default::default(),
        }
    }

    /// Takes a token for `ip`; false when its bucket is empty.
    pub fn admit(&self, ip: std::net::IpAddr, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= Self::MAX_ADDRESSES && !buckets.contains_key(&ip) {
            buckets.retain(|_, b| !b.is_full(now));
            if buckets.len() >= Self::MAX_ADDRESSES {
                return true;
            }
        }
        buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::with_rate(self.rate, self.burst, now))
            .take(now)
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 10, t0);
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 10);
        // 100/s = one token every 10 ms.
        assert!(!b.take(t0 + 5 * MS));
        assert!(b.take(t0 + 11 * MS));
        assert!(!b.take(t0 + 12 * MS));
        // Refill is capped at the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| b.take(later)).count(), 10);
    }

    #[test]
    fn drops_notify_once_a_second_and_sustained_abuse_closes() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, 5, 20, Duration::from_secs(10), t0);
        for _ in 0..5 {
            assert_eq!(r.check(t0), Verdict::Pass);
        }
        assert_eq!(r.check(t0), Verdict::Drop { notify: true });
        assert_eq!(r.check(t0), Verdict::Drop { notify: false });
        let t1 = t0 + Duration::from_millis(1001);
        // A second refills the bucket, up to its burst of 5.
        for _ in 0..5 {
            assert_eq!(r.check(t1), Verdict::Pass);
        }
        assert_eq!(r.check(t1), Verdict::Drop { notify: true });
        // 3 drops so far; 17 more stay under the limit of 20, the 21st closes.
        for _ in 0..17 {
            assert!(matches!(r.check(t1), Verdict::Drop { .. }));
        }
        assert_eq!(r.check(t1), Verdict::Close);
    }

    #[test]
    fn upgrades_are_metered_per_address_and_the_map_stays_bounded() {
        let t0 = Instant::now();
        let a: std::net::IpAddr = [10, 0, 0, 1].into();
        let b: std::net::IpAddr = [10, 0, 0, 2].into();
        let per = PerAddress::new(2, 3);
        assert_eq!((0..10).filter(|_| per.admit(a, t0)).count(), 3);
        assert!(per.admit(b, t0), "another address has its own bucket");
        assert!(per.admit(a, t0 + Duration::from_millis(600)));
        // Off: everything passes and nothing is tracked.
        let off = PerAddress::new(0, 1);
        assert!((0..100).all(|_| off.admit(a, t0)));
        assert_eq!(off.tracked(), 0);
        // Full: refilled buckets are forgotten to make room.
        for i in 0..PerAddress::MAX_ADDRESSES as u32 {
            per.admit(std::net::IpAddr::from(((i + 1) << 8).to_be_bytes()), t0);
        }
        assert_eq!(per.tracked(), PerAddress::MAX_ADDRESSES);
        let later = t0 + Duration::from_secs(10);
        assert!(per.admit([192, 0, 2, 1].into(), later));
        assert!(per.tracked() < 10, "{} tracked", per.tracked());
    }

    #[test]
    fn room_creations_are_counted_per_minute() {
        let t0 = Instant::now();
        let a: std::net::IpAddr = [10, 0, 0, 1].into();
        let per = PerAddress::per_minute(60);
        assert_eq!((0..200).filter(|_| per.admit(a, t0)).count(), 60);
        assert!(!per.admit(a, t0 + Duration::from_millis(500)));
        assert!(per.admit(a, t0 + Duration::from_millis(1001)));
        let slow = PerAddress::per_minute(6);
        assert_eq!((0..10).filter(|_| slow.admit(a, t0)).count(), 6);
        assert!(!slow.admit(a, t0 + Duration::from_secs(9)));
        assert!(slow.admit(a, t0 + Duration::from_secs(11)));
        assert!((0..100).all(|_| PerAddress::per_minute(0).admit(a, t0)));
    }

    #[test]
    fn the_abuse_count_starts_over_after_the_window() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, 1, 3, Duration::from_secs(10), t0);
        assert_eq!(r.check(t0), Verdict::Pass);
        for _ in 0..3 {
            assert!(matches!(r.check(t0), Verdict::Drop { .. }));
        }
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(r.check(t1), Verdict::Pass);
        for _ in 0..3 {
            assert!(matches!(r.check(t1), Verdict::Drop { .. }));
        }
        assert_eq!(r.check(t1), Verdict::Close);
    }
}
