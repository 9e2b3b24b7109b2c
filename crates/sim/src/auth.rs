//! OAuth tokens, M2M sessions and the login lockout, as ThingSpace documents them.
//!
//! - One OAuth token per client, valid for `token_lifetime` from first issue; asking
//!   again inside that time returns the same token (renewing early gains nothing).
//! - Sessions expire after `session_idle` without use and stay valid while used.
//! - Five failed logins in a row lock the configured user's account: every later
//!   login fails, even with the right password, until `/_sim/reset`. A success
//!   resets the count. A username that is not the configured one has no account to
//!   lock: it is refused and nothing is remembered about it, so a flood of made-up
//!   usernames costs the simulator no memory.
//!
//! Times are `tokio::time::Instant`: real time in the binary, driven time in tests on
//! a paused clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng as _;
use rand::distr::Alphanumeric;
use tokio::time::Instant;

/// Failed logins in a row that lock a username.
pub const LOCKOUT_THRESHOLD: u32 = 5;

/// What an unrepresentably long token lifetime is cut to.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerError {
    Missing,
    Invalid,
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginError {
    BadCredentials,
    Locked,
}

/// Why a session token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionError {
    Missing,
    Expired,
}

/// The configured credentials and lifetimes.
#[derive(Debug, Clone)]
pub(crate) struct AuthConfig {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) token_lifetime: Duration,
    pub(crate) session_idle: Duration,
}

#[derive(Default)]
struct AuthInner {
    /// The live token per client id, with its expiry.
    current: HashMap<String, (String, Instant)>,
    /// Every live token, with its expiry.
    tokens: HashMap<String, Instant>,
    /// Session token -> last use.
    sessions: HashMap<String, Instant>,
    /// Failed logins in a row of the configured user.
    failures: u32,
    locked: bool,
}

pub(crate) struct Auth {
    config: AuthConfig,
    // A std mutex: every critical section is a few map operations, never an await.
    inner: Mutex<AuthInner>,
}

fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Auth {
    pub(crate) fn new(config: AuthConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(AuthInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthInner> {
        // A poisoned lock only means a panic elsewhere mid-update of plain maps.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues (or re-issues) the OAuth token. `Ok((token, seconds left))`, `None` for
    /// wrong client credentials. The flag says whether the token is new.
    pub(crate) fn issue_token(&self, client_id: &str, secret: &str) -> Option<(String, u64, bool)> {
        if client_id != self.config.client_id || secret != self.config.client_secret {
            return None;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some((token, expires)) = inner.current.get(client_id)
            && *expires > now
            && inner.tokens.contains_key(token)
        {
            return Some((
                token.clone(),
                expires.duration_since(now).as_secs().max(1),
                false,
            ));
        }
        inner.tokens.retain(|_, expires| *expires > now);
        let token = random_token(32);
        // `Instant + Duration` panics on overflow; a configured `Duration::MAX` means
        // "never expires", so saturate to a point decades away instead.
        let expires = now
            .checked_add(self.config.token_lifetime)
            .or_else(|| now.checked_add(FAR_FUTURE))
            .unwrap_or(now);
        inner.tokens.insert(token.clone(), expires);
        inner
            .current
            .insert(client_id.to_string(), (token.clone(), expires));
        Some((token, self.config.token_lifetime.as_secs(), true))
    }

    /// Checks an `Authorization` header value.
    pub(crate) fn check_bearer(&self, header: Option<&str>) -> Result<(), BearerError> {
        let header = header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(BearerError::Missing)?;
        let (scheme, token) = header.split_once(' ').ok_or(BearerError::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(BearerError::Invalid);
        }
        let inner = self.lock();
        match inner.tokens.get(token.trim()) {
            Some(expires) if *expires > Instant::now() => Ok(()),
            _ => Err(BearerError::Invalid),
        }
    }

    /// Logs a user in; a new session token on success.
    pub(crate) fn login(&self, username: &str, password: &str) -> Result<String, LoginError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if username != self.config.username {
            return Err(LoginError::BadCredentials);
        }
        if inner.locked {
            return Err(LoginError::Locked);
        }
        if password != self.config.password {
            inner.failures = inner.failures.saturating_add(1);
            inner.locked = inner.failures >= LOCKOUT_THRESHOLD;
            return Err(LoginError::BadCredentials);
        }
        inner.failures = 0;
        let idle = self.config.session_idle;
        inner
            .sessions
            .retain(|_, last| now.duration_since(*last) < idle);
        let token = random_token(40);
        inner.sessions.insert(token.clone(), now);
        Ok(token)
    }

    /// Checks a `VZ-M2M-Token` header value and marks the session used.
    pub(crate) fn check_session(&self, header: Option<&str>) -> Result<(), SessionError> {
        let token = header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(SessionError::Missing)?;
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.sessions.get_mut(token) {
            Some(last) if now.duration_since(*last) < self.config.session_idle => {
                *last = now;
                Ok(())
            }
            _ => Err(SessionError::Expired),
        }
    }

    /// Invalidates every OAuth token and session issued so far.
    pub(crate) fn expire_all(&self) {
        let mut inner = self.lock();
        inner.current.clear();
        inner.tokens.clear();
        inner.sessions.clear();
    }

    /// Clears lockouts and failure counts (tokens stay valid).
    pub(crate) fn clear_lockouts(&self) {
        let mut inner = self.lock();
        inner.failures = 0;
        inner.locked = false;
    }

    pub(crate) fn locked_count(&self) -> u64 {
        u64::from(self.lock().locked)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn auth() -> Auth {
        Auth::new(AuthConfig {
            client_id: "id".into(),
            client_secret: "secret".into(),
            username: "u".into(),
            password: "p".into(),
            token_lifetime: Duration::from_secs(3600),
            session_idle: Duration::from_secs(1200),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn token_is_reused_within_its_life_then_renewed() {
        let a = auth();
        assert!(a.issue_token("id", "nope").is_none());
        let (t1, left, new) = a.issue_token("id", "secret").unwrap();
        assert_eq!((left, new), (3600, true));
        tokio::time::advance(Duration::from_secs(600)).await;
        let (t2, left, new) = a.issue_token("id", "secret").unwrap();
        assert_eq!((t2.as_str(), left, new), (t1.as_str(), 3000, false));
        assert_eq!(a.check_bearer(Some(&format!("Bearer {t1}"))), Ok(()));
        tokio::time::advance(Duration::from_secs(3000)).await;
        assert_eq!(
            a.check_bearer(Some(&format!("Bearer {t1}"))),
            Err(BearerError::Invalid)
        );
        let (t3, _, new) = a.issue_token("id", "secret").unwrap();
        assert!(new && t3 != t1);
        assert_eq!(a.check_bearer(None), Err(BearerError::Missing));
        assert_eq!(
            a.check_bearer(Some(&format!("Basic {t3}"))),
            Err(BearerError::Invalid)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unbounded_token_lifetime_does_not_panic() {
        let a = Auth::new(AuthConfig {
            token_lifetime: Duration::MAX,
            ..auth().config
        });
        let (token, left, _) = a.issue_token("id", "secret").unwrap();
        assert_eq!(left, u64::MAX);
        tokio::time::advance(Duration::from_secs(10 * 365 * 24 * 3600)).await;
        assert_eq!(a.check_bearer(Some(&format!("Bearer {token}"))), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn session_expires_after_idle_time_but_not_while_used() {
        let a = auth();
        let s = a.login("u", "p").unwrap();
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1000)).await;
            assert_eq!(a.check_session(Some(&s)), Ok(()));
        }
        tokio::time::advance(Duration::from_secs(1200)).await;
        assert_eq!(a.check_session(Some(&s)), Err(SessionError::Expired));
        assert_eq!(a.check_session(None), Err(SessionError::Missing));
    }

    #[test]
    fn five_failures_lock_until_cleared_and_success_resets_count() {
        let a = auth();
        for _ in 0..4 {
            assert_eq!(a.login("u", "bad"), Err(LoginError::BadCredentials));
        }
        assert!(a.login("u", "p").is_ok(), "a success resets the count");
        for _ in 0..5 {
            assert_eq!(a.login("u", "bad"), Err(LoginError::BadCredentials));
        }
        assert_eq!(a.login("u", "p"), Err(LoginError::Locked));
        assert_eq!(a.locked_count(), 1);
        a.clear_lockouts();
        assert!(a.login("u", "p").is_ok());
    }

    #[test]
    fn unknown_usernames_are_refused_without_being_remembered() {
        let a = auth();
        for i in 0..10_000 {
            assert_eq!(
                a.login(&format!("nobody-{i}"), "p"),
                Err(LoginError::BadCredentials)
            );
        }
        for _ in 0..6 {
            assert_eq!(a.login("nobody-1", "bad"), Err(LoginError::BadCredentials));
        }
        assert_eq!(a.locked_count(), 0, "no account to lock");
        assert_eq!(a.lock().failures, 0, "the user's count is untouched");
        assert!(a.login("u", "p").is_ok());
    }
}
