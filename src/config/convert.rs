//! Converters from one TOML value to one typed setting. Each returns a message fit to
//! follow the key's name (`invalid duration "fast" (...)`), accepts the string forms
//! environment overrides arrive in (`"64"`, `"true"`), and never echoes a secret.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use devicegraph_upstream::AccountName;
use secrecy::SecretString;
use toml::Value;
use url::Url;

use super::units::{parse_duration, parse_size};
use super::{AuthMode, KeyAccounts, LogFormat, UpstreamMode};

/// How a value looks in a message: strings quoted, others with their TOML type.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Table(_) => "a table".to_owned(),
        Value::Array(_) => "a list".to_owned(),
        other => format!("{} {other}", other.type_str()),
    }
}

/// Integers written as TOML integers or, from the environment, as digit strings.
pub(super) fn integer<T: TryFrom<i64> + FromStr>(value: &Value) -> Result<T, String> {
    match value {
        Value::Integer(i) => T::try_from(*i).map_err(|_| format!("{i} is out of range")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("expected a whole number, found {}", describe(value))),
        other => Err(format!(
            "expected a whole number, found {}",
            describe(other)
        )),
    }
}

/// A share between 0 and 1, written as a TOML float or integer or, from the
/// environment, as a string.
pub(super) fn fraction(value: &Value) -> Result<f64, String> {
    let share = match value {
        Value::Float(f) => *f,
        #[allow(clippy::cast_precision_loss)]
        Value::Integer(i) => *i as f64,
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("expected a number from 0 to 1, found {}", describe(value)))?,
        other => {
            return Err(format!(
                "expected a number from 0 to 1, found {}",
                describe(other)
            ));
        }
    };
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!("expected a number from 0 to 1, found {share}"))
    }
}

pub(super) fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Boolean(b) => Ok(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!("expected true or false, found {}", describe(other))),
    }
}

pub(super) fn string(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("expected a string, found {}", describe(other))),
    }
}

pub(super) fn secret(value: &Value) -> Result<SecretString, String> {
    match value {
        Value::String(s) => Ok(SecretString::from(s.as_str())),
        // Never echo what might be a secret, even a mistyped one.
        other => Err(format!("expected a string, found a {}", other.type_str())),
    }
}

pub(super) fn duration(value: &Value) -> Result<Duration, String> {
    match value {
        Value::String(s) => parse_duration(s),
        Value::Integer(i) => parse_duration(&i.to_string()),
        other => Err(format!(
            "expected a duration such as \"30s\", found {}",
            describe(other)
        )),
    }
}

pub(super) fn size(value: &Value) -> Result<u64, String> {
    match value {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| format!("invalid size {i}: negative")),
        Value::String(s) => parse_size(s),
        other => Err(format!(
            "expected a size such as \"256MiB\", found {}",
            describe(other)
        )),
    }
}

pub(super) fn socket_addr(value: &Value) -> Result<SocketAddr, String> {
    let text = string(value)?;
    text.trim().parse().map_err(|_| {
        format!(
            "invalid address {text:?} (write IP:port, e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\")"
        )
    })
}

pub(super) fn http_url(value: &Value) -> Result<Url, String> {
    let text = string(value)?;
    // The URL may hold a password: quote it with its credentials masked.
    let shown = super::redact_url(&text);
    let url = Url::parse(text.trim()).map_err(|e| format!("invalid URL {shown:?} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("invalid URL {shown:?}: must be http or https"));
    }
    Ok(url)
}

pub(super) fn redis_url(value: &Value) -> Result<Option<String>, String> {
    let text = string(value)?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    // The URL may hold a password: quote only its scheme in messages.
    let url = Url::parse(text).map_err(|e| format!("invalid Redis URL ({e})"))?;
    if !matches!(url.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
        return Err(format!(
            "invalid Redis URL scheme {:?} (use redis://, rediss:// or unix://)",
            url.scheme()
        ));
    }
    Ok(Some(text.to_owned()))
}

pub(super) fn upstream_mode(value: &Value) -> Result<UpstreamMode, String> {
    match string(value)?.trim().to_ascii_lowercase().as_str() {
        "simulator" => Ok(UpstreamMode::Simulator),
        "thingspace" => Ok(UpstreamMode::Thingspace),
        _ => Err(format!(
            "expected \"simulator\" or \"thingspace\", found {}",
            describe(value)
        )),
    }
}

pub(super) fn auth_mode(value: &Value) -> Result<AuthMode, String> {
    match string(value)?.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(AuthMode::None),
        "api_key" => Ok(AuthMode::ApiKey),
        _ => Err(format!(
            "expected \"none\" or \"api_key\", found {}",
            describe(value)
        )),
    }
}

pub(super) fn log_format(value: &Value) -> Result<LogFormat, String> {
    match string(value)?.trim().to_ascii_lowercase().as_str() {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "expected \"human\" or \"json\", found {}",
            describe(value)
        )),
    }
}

pub(super) fn log_level(value: &Value) -> Result<String, String> {
    let text = string(value)?;
    tracing_subscriber::EnvFilter::builder()
        .parse(text.trim())
        .map_err(|e| {
            format!(
                "invalid log filter {text:?} ({e}; e.g. \"info\" or \"info,devicegraph=debug\")"
            )
        })?;
    Ok(text.trim().to_owned())
}

pub(super) fn sha256_hex(value: &Value) -> Result<[u8; 32], String> {
    let help =
        "expected 64 hex digits, the SHA-256 of the key (e.g. `printf %s \"$KEY\" | sha256sum`)";
    let text = string(value).map_err(|_| help.to_owned())?;
    let bytes = hex::decode(text.trim()).map_err(|_| help.to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| help.to_owned())
}

pub(super) fn key_accounts(value: &Value) -> Result<KeyAccounts, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "expected a list of account names, found {}",
            describe(value)
        ));
    };
    let mut names = Vec::new();
    for item in items {
        names.push(string(item)?);
    }
    if names.iter().any(|n| n == "*") {
        if names.len() > 1 {
            return Err("\"*\" means every account and must stand alone".to_owned());
        }
        return Ok(KeyAccounts::All);
    }
    if names.is_empty() {
        return Err("empty: list account names, or [\"*\"] for all".to_owned());
    }
    let mut accounts = BTreeSet::new();
    for name in names {
        accounts.insert(AccountName::from_str(&name).map_err(|e| e.to_string())?);
    }
    Ok(KeyAccounts::Only(accounts))
}

/// `server.cors_origins`: `["*"]`, or origins such as `"https://dash.example.com"`
/// (scheme, host and optional port; no path).
pub(super) fn cors_origins(value: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = value else {
        return Err(format!(
            "expected a list of origins, found {}",
            describe(value)
        ));
    };
    let mut origins = Vec::new();
    for item in items {
        let text = string(item)?;
        let text = text.trim();
        if text == "*" {
            if items.len() > 1 {
                return Err("\"*\" means every origin and must stand alone".to_owned());
            }
            return Ok(vec!["*".to_owned()]);
        }
        let url = Url::parse(text).map_err(|_| format!("invalid origin {text:?}"))?;
        let bare = url.path() == "/" && !text.ends_with('/') && url.query().is_none();
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
            return Err(format!(
                "invalid origin {text:?} (write scheme://host[:port], e.g. \"https://dash.example.com\")"
            ));
        }
        origins.push(text.to_owned());
    }
    Ok(origins)
}
