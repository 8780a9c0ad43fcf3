//! How long to wait before sending a failed request again.

use std::time::Duration;

use crate::ClientError;

/// Exponential backoff with jitter, like the SDKs' default policy: throttling errors start
/// from a longer base delay than other failures.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// First delay after a throttling error.
    pub throttled_base: Duration,
    /// First delay after any other retriable error.
    pub base: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 20,
            throttled_base: Duration::from_millis(500),
            base: Duration::from_millis(200),
            max_delay: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    /// For a first call that tells whether a server is there at all: three quick attempts
    /// (about a second), so a wrong or dead endpoint fails at once rather than after the
    /// default policy's minute of retries.
    pub fn probe() -> Self {
        Self {
            max_retries: 2,
            base: Duration::from_millis(300),
            ..Self::default()
        }
    }

    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The delay before retry number `attempt` (0-based), or `None` when retries are used up.
    /// The delay is drawn from the upper half of the exponential bound.
    pub fn delay(&self, attempt: u32, error: &ClientError) -> Option<Duration> {
        if attempt >= self.max_retries {
            return None;
        }
        let throttled = matches!(error, ClientError::Service { code, message, .. } if code.is_throttling(message));
        let base = if throttled {
            self.throttled_base
        } else {
            self.base
        };
        let bound = base
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max_delay);
        let jitter: f64 = rand::random();
        Some(bound.mul_f64(0.5 + 0.5 * jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> ClientError {
        ClientError::Service {
            code: ots_protocol::error::ErrorCode::ServerBusy,
            message: String::new(),
            request_id: None,
            http_status: 503,
        }
    }

    #[test]
    fn delays_grow_within_bounds_and_stop() {
        let policy = RetryPolicy::default();
        let transport = ClientError::Transport("reset".into());
        for attempt in 0..policy.max_retries {
            let bound = policy
                .base
                .saturating_mul(1 << attempt.min(16))
                .min(policy.max_delay);
            let d = policy.delay(attempt, &transport).unwrap();
            assert!(
                d >= bound / 2 && d <= bound,
                "attempt {attempt}: {d:?} vs {bound:?}"
            );
        }
        assert_eq!(policy.delay(policy.max_retries, &transport), None);
    }

    #[test]
    fn throttling_backs_off_longer() {
        let policy = RetryPolicy::default();
        let d = policy.delay(0, &busy()).unwrap();
        assert!(d >= policy.throttled_base / 2 && d > policy.base);
        assert_eq!(RetryPolicy::none().delay(0, &busy()), None);
    }
}
