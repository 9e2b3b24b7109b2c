//! The account's [`Credentials`] and the two ThingSpace tokens obtained with them:
//! the OAuth bearer (client credentials) and the M2M session (username/password
//! login), cached, renewed, and protected against locking the account.
//!
//! **Single flight.** All token state sits behind one `tokio::sync::Mutex`, held
//! across the token request itself: when many calls find the session expired at
//! once, the first renews it while the rest wait on the lock and then find the fresh
//! token. A caller that was refused reports the *generation* of the token it used;
//! the token is dropped only if it is still that generation, so a hundred callers
//! refused with the same old token cause one renewal, not a hundred. An async mutex
//! (not `std`) because the guard is held across the HTTP request.
//!
//! **Renewal policy.** The bearer is renewed `token_refresh_margin` before its
//! `expires_in` runs out and never earlier (ThingSpace returns the same token within
//! the hour anyway), or when a data call is refused with HTTP 401. The session has no
//! known lifetime: it is renewed only when the platform says it expired, or together
//! with a refused bearer, since a session belongs to a login.
//!
//! **Lockout protection.** Five failed logins in a row lock a ThingSpace account
//! until Verizon support unlocks it. A refused login (400/401 from the login or token
//! endpoint) starts a `login_backoff` pause before the one further try; a second
//! refusal in a row makes the client give up for good: every later call fails with
//! `BadCredentials` without touching the network, until the client is rebuilt with
//! new configuration. Transient failures (5xx, connect) are not refusals.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::decode::bodies::{parse_error_body, parse_oauth_token, parse_session_token};
use crate::error::{Endpoint, UpstreamError};
use crate::retry::later;
use crate::transport::{
    Authorization, FORM, JSON, RawResponse, RequestSpec, Transport, decode_error,
};

/// The four secrets-and-names a ThingSpace account needs. `Debug` never shows secrets.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: SecretString,
    pub username: String,
    pub password: SecretString,
}

/// Refusals in a row after which the client stops trying (ThingSpace locks at five).
const MAX_REFUSALS: u32 = 2;

/// Token lifetime assumed when the token endpoint omits `expires_in` (Verizon
/// documents one hour).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Why a data call's tokens were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// HTTP 401 from the API gateway (fault 900901 invalid / 900902 missing credentials).
    Bearer,
    /// An error body whose `errorCode` names the session token (HTTP 400 or 401).
    Session,
}

/// Reads a refused data call. Acts on the error code, never on the message.
pub(crate) fn rejection(status: StatusCode, body: &[u8]) -> Option<Rejection> {
    if matches!(status.as_u16(), 400 | 401)
        && parse_error_body(body).is_some_and(|b| b.error_code.contains("SessionToken"))
    {
        return Some(Rejection::Session);
    }
    (status == StatusCode::UNAUTHORIZED).then_some(Rejection::Bearer)
}

/// The API gateway's fault code in `{"fault":{"code":900901,...}}`, number or string.
pub(crate) fn gateway_fault(body: &[u8]) -> Option<i64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.get("fault")?.get("code")? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Both tokens for one data call, with the generations they belong to.
#[derive(Clone)]
pub(crate) struct Tokens {
    pub(crate) bearer: SecretString,
    pub(crate) session: SecretString,
    bearer_generation: u64,
    session_generation: u64,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("bearer_generation", &self.bearer_generation)
            .field("session_generation", &self.session_generation)
            .finish_non_exhaustive()
    }
}

struct Bearer {
    token: SecretString,
    renew_at: Instant,
}

#[derive(Default)]
struct State {
    bearer: Option<Bearer>,
    /// Bumped each time a bearer is stored.
    bearer_generation: u64,
    session: Option<SecretString>,
    /// Bumped each time a session is stored.
    session_generation: u64,
    /// Credential refusals in a row (reset by a successful login).
    refusals: u32,
    last_refusal: Option<Instant>,
}

pub(crate) struct Auth {
    credentials: Credentials,
    refresh_margin: Duration,
    login_backoff: Duration,
    state: Mutex<State>,
    /// Set once, after `MAX_REFUSALS` refusals; checked before the lock so a client
    /// that gave up answers at once.
    gave_up: OnceLock<String>,
}

impl Auth {
    pub(crate) fn new(
        credentials: Credentials,
        refresh_margin: Duration,
        login_backoff: Duration,
    ) -> Self {
        Self {
            credentials,
            refresh_margin,
            login_backoff,
            state: Mutex::new(State::default()),
            gave_up: OnceLock::new(),
        }
    }

    fn bad_credentials(&self) -> Option<UpstreamError> {
        self.gave_up
            .get()
            .map(|reason| UpstreamError::BadCredentials {
                reason: reason.clone(),
            })
    }

    async fn lock(
        &self,
        caller: Endpoint,
        deadline: Instant,
    ) -> Result<MutexGuard<'_, State>, UpstreamError> {
        if let Some(e) = self.bad_credentials() {
            return Err(e);
        }
        let state = timeout_at(deadline, self.state.lock())
            .await
            .map_err(|_| UpstreamError::Timeout { endpoint: caller })?;
        match self.bad_credentials() {
            Some(e) => Err(e),
            None => Ok(state),
        }
    }

    /// Valid tokens for a data call by `caller`, renewing whichever is missing or due.
    pub(crate) async fn tokens(
        &self,
        transport: &Transport,
        caller: Endpoint,
        deadline: Instant,
    ) -> Result<Tokens, UpstreamError> {
        let mut state = self.lock(caller, deadline).await?;
        let bearer_due = state
            .bearer
            .as_ref()
            .is_none_or(|b| Instant::now() >= b.renew_at);
        if bearer_due {
            self.renew_bearer(&mut state, transport, deadline).await?;
        }
        if state.session.is_none() {
            self.login(&mut state, transport, deadline).await?;
        }
        match (&state.bearer, &state.session) {
            (Some(bearer), Some(session)) => Ok(Tokens {
                bearer: bearer.token.clone(),
                session: session.clone(),
                bearer_generation: state.bearer_generation,
                session_generation: state.session_generation,
            }),
            // Both renewals above either stored a token or returned an error.
            _ => Err(UpstreamError::Auth {
                endpoint: Endpoint::SessionLogin,
                reason: "no token after renewal".into(),
            }),
        }
    }

    /// A data call was refused with `seen`: drop the refused token unless someone
    /// already replaced it. The next [`Auth::tokens`] renews it.
    pub(crate) async fn rejected(
        &self,
        rejection: Rejection,
        seen: &Tokens,
        caller: Endpoint,
        deadline: Instant,
    ) -> Result<(), UpstreamError> {
        let mut state = self.lock(caller, deadline).await?;
        match rejection {
            Rejection::Bearer if state.bearer_generation == seen.bearer_generation => {
                tracing::debug!(endpoint = caller.name(), "bearer token refused; renewing");
                state.bearer = None;
                // The session was issued to a login made with the refused bearer.
                state.session = None;
            }
            Rejection::Session if state.session_generation == seen.session_generation => {
                tracing::debug!(
                    endpoint = caller.name(),
                    "session token expired; logging in"
                );
                state.session = None;
            }
            _ => {}
        }
        Ok(())
    }

    /// Before anything that presents credentials: give up, or wait out the backoff
    /// after a refusal.
    async fn before_credential_attempt(
        &self,
        state: &State,
        endpoint: Endpoint,
        deadline: Instant,
    ) -> Result<(), UpstreamError> {
        if let Some(e) = self.bad_credentials() {
            return Err(e);
        }
        if let Some(last) = state.last_refusal.filter(|_| state.refusals > 0) {
            let retry_at = later(last, self.login_backoff);
            if retry_at > Instant::now() {
                if retry_at >= deadline {
                    return Err(UpstreamError::Auth {
                        endpoint,
                        reason: "backing off after refused credentials".into(),
                    });
                }
                // Holding the lock on purpose: nobody else may log in meanwhile.
                sleep_until(retry_at).await;
            }
        }
        Ok(())
    }

    /// Records a credential refusal; the error to return.
    fn refused(
        &self,
        state: &mut State,
        endpoint: Endpoint,
        response: &RawResponse,
    ) -> UpstreamError {
        state.refusals += 1;
        state.last_refusal = Some(Instant::now());
        let code = parse_error_body(&response.body)
            .map(|b| format!(", {}", b.error_code))
            .unwrap_or_default();
        let reason = format!(
            "{} refused the credentials (HTTP {}{code})",
            endpoint.name(),
            response.status.as_u16()
        );
        tracing::warn!(
            endpoint = endpoint.name(),
            status = response.status.as_u16(),
            refusals = state.refusals,
            "upstream refused the credentials"
        );
        if state.refusals >= MAX_REFUSALS {
            tracing::error!(
                endpoint = endpoint.name(),
                "credentials refused twice in a row; not logging in again until reconfigured"
            );
            let reason = self.gave_up.get_or_init(|| reason).clone();
            UpstreamError::BadCredentials { reason }
        } else {
            UpstreamError::Auth { endpoint, reason }
        }
    }

    async fn renew_bearer(
        &self,
        state: &mut State,
        transport: &Transport,
        deadline: Instant,
    ) -> Result<(), UpstreamError> {
        const ENDPOINT: Endpoint = Endpoint::OAuthToken;
        self.before_credential_attempt(state, ENDPOINT, deadline)
            .await?;
        let spec = RequestSpec {
            method: Method::POST,
            url: transport.url(&["ts", "v1", "oauth2", "token"]),
            body: Some((FORM, Bytes::from_static(b"grant_type=client_credentials"))),
        };
        let auth = Authorization::Basic {
            user: &self.credentials.client_id,
            password: &self.credentials.client_secret,
        };
        let requested_at = Instant::now();
        let response = transport
            .send_in_span(ENDPOINT, &spec, auth, deadline)
            .await?;
        if !response.status.is_success() {
            return Err(match response.status.as_u16() {
                400 | 401 => self.refused(state, ENDPOINT, &response),
                status => UpstreamError::Auth {
                    endpoint: ENDPOINT,
                    reason: format!("token endpoint answered HTTP {status}"),
                },
            });
        }
        let token = parse_oauth_token(&response.body)
            .map_err(|e| decode_error(ENDPOINT, e, &response.body))?;
        let lifetime = token
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        state.bearer = Some(Bearer {
            token: SecretString::from(token.access_token),
            renew_at: later(requested_at, renew_after(lifetime, self.refresh_margin)),
        });
        state.bearer_generation += 1;
        Ok(())
    }

    async fn login(
        &self,
        state: &mut State,
        transport: &Transport,
        deadline: Instant,
    ) -> Result<(), UpstreamError> {
        const ENDPOINT: Endpoint = Endpoint::SessionLogin;
        let body = serde_json::to_vec(&serde_json::json!({
            "username": self.credentials.username,
            "password": self.credentials.password.expose_secret(),
        }))
        .map_err(|_| UpstreamError::InvalidRequest {
            endpoint: ENDPOINT,
            reason: "could not encode the login body".into(),
        })?;
        let spec = RequestSpec {
            method: Method::POST,
            url: transport.url(&["m2m", "v1", "session", "login"]),
            body: Some((JSON, Bytes::from(body))),
        };
        // One bearer renewal is allowed if the login itself finds the bearer stale.
        for round in 0..2 {
            if state.bearer.is_none() {
                self.renew_bearer(state, transport, deadline).await?;
            }
            let Some(bearer) = state.bearer.as_ref().map(|b| b.token.clone()) else {
                break;
            };
            self.before_credential_attempt(state, ENDPOINT, deadline)
                .await?;
            let response = transport
                .send_in_span(ENDPOINT, &spec, Authorization::Bearer(&bearer), deadline)
                .await?;
            let status = response.status.as_u16();
            if response.status.is_success() {
                let token = parse_session_token(&response.body)
                    .map_err(|e| decode_error(ENDPOINT, e, &response.body))?;
                state.session = Some(SecretString::from(token.session_token));
                state.session_generation += 1;
                state.refusals = 0;
                state.last_refusal = None;
                return Ok(());
            }
            // A gateway fault means the bearer was refused, not the password: that
            // must not count towards the lockout.
            if status == 401 && gateway_fault(&response.body).is_some() {
                if round == 0 {
                    state.bearer = None;
                    continue;
                }
                return Err(UpstreamError::Auth {
                    endpoint: ENDPOINT,
                    reason: "login refused a freshly issued bearer token (HTTP 401)".into(),
                });
            }
            return Err(match status {
                400 | 401 => self.refused(state, ENDPOINT, &response),
                _ => UpstreamError::Auth {
                    endpoint: ENDPOINT,
                    reason: format!("login answered HTTP {status}"),
                },
            });
        }
        Err(UpstreamError::Auth {
            endpoint: ENDPOINT,
            reason: "no bearer token for the login".into(),
        })
    }
}

/// How long after issue a token with `lifetime` is renewed: `margin` before it runs
/// out, but never in the first half of its life (a margin larger than the lifetime
/// would otherwise renew on every call).
pub(crate) fn renew_after(lifetime: Duration, margin: Duration) -> Duration {
    lifetime.saturating_sub(margin).max(lifetime / 2)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
