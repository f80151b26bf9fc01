//! The bucket arithmetic: a token bucket kept as one number, its theoretical arrival time
//! (the generic cell rate algorithm, GCRA).
//!
//! A limit of `requests` per `window` with a `burst` is a bucket that holds `burst` requests
//! and refills at `requests` per `window`, continuously: an idle client may send `burst` at
//! once, and then one more each `window / requests`. Instead of a count and a refill time the
//! state is the time at which the bucket would be full again (TAT): a request is allowed when
//! taking it would not put TAT more than `burst` request-intervals ahead of now. One integer
//! per key, updated with one compare-and-swap, no timer.
//!
//! Time is in microseconds and a request's interval is rounded up to a whole one, so a limit
//! is never looser than configured: `burst` requests at one instant are allowed and the next
//! is not, whatever the ratio. Every bucket's state is in the same unit, so entries of
//! different limits can share one table.

/// A compiled limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per window (1 to [`MAX_REQUESTS`]).
    pub requests: u32,
    /// Window in seconds (1 to [`MAX_WINDOW_SECONDS`]).
    pub window_seconds: u32,
    /// Requests an idle client may send at once (1 to [`MAX_REQUESTS`]).
    pub burst: u32,
}

/// Largest `requests` or `burst`.
pub const MAX_REQUESTS: u32 = 1_000_000;
/// Longest window: 30 days.
pub const MAX_WINDOW_SECONDS: u32 = 30 * 86_400;

/// What taking one request from a bucket came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// Whether the request is within the limit.
    pub allowed: bool,
    /// The bucket's new state (unchanged when refused).
    pub tat: u64,
    /// Requests that could still be sent now (the `r` of the `RateLimit` field).
    pub remaining: u32,
    /// Whole seconds until the bucket is full again (the `t` of the `RateLimit` field).
    pub reset: u32,
    /// When refused: whole seconds until one request would be allowed (`Retry-After`, at
    /// least 1).
    pub retry_after: u32,
}

impl Rate {
    /// One request's cost in microseconds (rounded up).
    fn interval(self) -> u128 {
        (u128::from(self.window_seconds) * 1_000_000).div_ceil(u128::from(self.requests.max(1)))
    }

    /// How far ahead of now TAT may be after a request.
    fn tolerance(self) -> u128 {
        self.interval() * u128::from(self.burst)
    }

    /// Takes one request at `now_us` (microseconds) from a bucket in state `tat` (`0`: never
    /// used, which is a full bucket).
    pub fn take(self, tat: u64, now_us: u64) -> Take {
        let now = u128::from(now_us);
        let start = u128::from(tat).max(now);
        let next = start + self.interval();
        let tolerance = self.tolerance();
        if next - now <= tolerance {
            let ahead = next - now;
            let remaining = (tolerance - ahead) / self.interval();
            Take {
                allowed: true,
                tat: u64::try_from(next).unwrap_or(u64::MAX),
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                reset: seconds(ahead),
                retry_after: 0,
            }
        } else {
            Take {
                allowed: false,
                tat,
                remaining: 0,
                reset: seconds(start - now),
                retry_after: seconds(next - now - tolerance).max(1),
            }
        }
    }
}

/// Whether a bucket in state `tat` is full at `now_us`: its entry can then go to another key
/// without anyone losing count (a full bucket is what a new key starts with).
pub fn is_full(tat: u64, now_us: u64) -> bool {
    tat <= now_us
}

/// Whole seconds (rounded up) in `us` microseconds.
fn seconds(us: u128) -> u32 {
    u32::try_from(us.div_ceil(1_000_000)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000_000;
    const MS: u64 = 1000;

    fn run(rate: Rate, times: &[u64]) -> Vec<bool> {
        let mut tat = 0;
        times
            .iter()
            .map(|t| {
                let r = rate.take(tat, *t);
                tat = r.tat;
                r.allowed
            })
            .collect()
    }

    #[test]
    fn an_idle_client_gets_its_burst_at_once_and_no_more() {
        let rate = Rate { requests: 5, window_seconds: 60, burst: 5 };
        let mut tat = 0;
        for left in (0..5).rev() {
            let r = rate.take(tat, T0);
            assert!(r.allowed);
            assert_eq!(r.remaining, left);
            tat = r.tat;
        }
        let r = rate.take(tat, T0);
        assert!(!r.allowed);
        assert_eq!(r.tat, tat, "a refusal costs nothing");
        // One request refills every 12 s; the bucket is full again after 60 s.
        assert_eq!(r.retry_after, 12);
        assert_eq!(r.reset, 60);
    }

    #[test]
    fn the_sustained_rate_is_requests_per_window() {
        // 10 per second with a burst of 1: one every 100 ms, to the millisecond.
        let rate = Rate { requests: 10, window_seconds: 1, burst: 1 };
        assert_eq!(
            run(rate, &[T0, T0 + 99 * MS, T0 + 100 * MS, T0 + 150 * MS, T0 + 200 * MS]),
            [true, false, true, false, true]
        );
        // 3 per 7 seconds (intervals of 2333.3 ms, the second request 0.7 ms late): none early.
        let rate = Rate { requests: 3, window_seconds: 7, burst: 1 };
        assert_eq!(
            run(rate, &[T0, T0 + 2333 * MS, T0 + 2334 * MS, T0 + 4667 * MS, T0 + 4668 * MS]),
            [true, false, true, false, true]
        );
    }

    #[test]
    fn over_a_long_run_the_count_is_exact() {
        // 100 per 10 s, burst 20, a request every 10 ms for 59.99 s: the burst, then one per
        // 100 ms (599 intervals).
        let rate = Rate { requests: 100, window_seconds: 10, burst: 20 };
        let times: Vec<u64> = (0..6000).map(|i| T0 + i * 10 * MS).collect();
        let allowed = run(rate, &times).iter().filter(|a| **a).count();
        assert_eq!(allowed, 20 + 599);
    }

    #[test]
    fn reset_and_remaining_follow_the_refill() {
        let rate = Rate { requests: 60, window_seconds: 60, burst: 60 };
        let r = rate.take(0, T0);
        assert_eq!((r.remaining, r.reset), (59, 1));
        // Half a minute later the one request taken has long refilled.
        assert!(is_full(r.tat, T0 + 30_000 * MS));
        assert!(!is_full(r.tat, T0 + 500 * MS));
        // Extremes do not overflow.
        let big = Rate { requests: MAX_REQUESTS, window_seconds: MAX_WINDOW_SECONDS, burst: MAX_REQUESTS };
        let r = big.take(0, u64::MAX / 2);
        assert!(r.allowed);
    }
}
