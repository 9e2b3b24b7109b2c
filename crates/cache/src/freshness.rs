//! When a cached entry may be served: the pure decision, from an entry's age, its TTL
//! and the two windows past it. Kept apart from the I/O so it is tested exhaustively.

use std::time::Duration;

use tokio::time::Instant;

use crate::value::Entry;

/// The two windows past an entry's TTL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    /// Past its TTL, an entry is still served at once while one refresh runs.
    pub(crate) stale_while_revalidate: Duration,
    /// Past its TTL, an entry is served (marked stale) when the upstream fails.
    pub(crate) stale_if_error: Duration,
}

impl Windows {
    /// How long past its TTL an entry must be kept to serve both windows.
    pub(crate) fn retention(self) -> Duration {
        self.stale_while_revalidate.max(self.stale_if_error)
    }
}

/// What an entry of a given age may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Within its TTL: serve it.
    Fresh,
    /// Past its TTL, within stale-while-revalidate: serve it and refresh in the background.
    Revalidate,
    /// Past both; within stale-if-error: fetch, and serve it only if the fetch fails
    /// transiently.
    StaleIfError,
    /// Useless.
    Expired,
}

pub(crate) fn classify(age: Duration, ttl: Duration, windows: Windows) -> State {
    // `None` exactly when age < ttl.
    let Some(past) = age.checked_sub(ttl) else {
        return State::Fresh;
    };
    if past < windows.stale_while_revalidate {
        State::Revalidate
    } else if past < windows.stale_if_error {
        State::StaleIfError
    } else {
        State::Expired
    }
}

/// `classify` for an entry at `now`.
pub(crate) fn state_of<V>(entry: &Entry<V>, now: Instant, windows: Windows) -> State {
    classify(
        now.saturating_duration_since(entry.stored_at),
        entry.ttl,
        windows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    const W: Windows = Windows {
        stale_while_revalidate: secs(30),
        stale_if_error: secs(3600),
    };

    #[test]
    fn ages_map_to_states() {
        let ttl = secs(60);
        assert_eq!(classify(secs(0), ttl, W), State::Fresh);
        assert_eq!(classify(secs(59), ttl, W), State::Fresh);
        assert_eq!(classify(secs(60), ttl, W), State::Revalidate);
        assert_eq!(classify(secs(89), ttl, W), State::Revalidate);
        assert_eq!(classify(secs(90), ttl, W), State::StaleIfError);
        assert_eq!(classify(secs(3659), ttl, W), State::StaleIfError);
        assert_eq!(classify(secs(3660), ttl, W), State::Expired);
    }

    #[test]
    fn zero_windows_expire_at_ttl() {
        let none = Windows {
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        };
        assert_eq!(classify(secs(9), secs(10), none), State::Fresh);
        assert_eq!(classify(secs(10), secs(10), none), State::Expired);
        assert_eq!(none.retention(), Duration::ZERO);
    }

    #[test]
    fn swr_longer_than_stale_if_error_still_serves() {
        let w = Windows {
            stale_while_revalidate: secs(100),
            stale_if_error: secs(10),
        };
        assert_eq!(classify(secs(50), secs(10), w), State::Revalidate);
        assert_eq!(classify(secs(110), secs(10), w), State::Expired);
        assert_eq!(w.retention(), secs(100));
    }
}
