//! Turns the overlaid TOML table into a typed [`Config`], collecting every problem.
//!
//! Each key is converted on its own, so one bad value never hides another; a key
//! that fails keeps its default and the problem is recorded under its dotted name.
//! Cross-field rules (secrets required in thingspace mode, keys required in api_key
//! mode) run last and stay quiet about keys that already have a problem.
//!
//! Here: the walk over the sections and the [`Validator`] that records problems and
//! converts one key at a time. The sections are converted in `sections` (`[auth]`
//! and its keys in `auth`), the rules between keys in `cross_field`.

mod auth;
mod cross_field;
mod sections;

use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::convert::{describe, duration, integer};
use super::raw::{
    Raw, RawAuth, RawCache, RawGraphql, RawLimits, RawLog, RawServer, RawSimulator, RawUpstream,
    Unknown,
};
use super::{Config, ConfigError, Problem};

pub(super) fn validate(table: Table, problems: Vec<Problem>) -> Result<Config, ConfigError> {
    let mut v = Validator { problems };
    let mut config = Config::default();
    for (section, value) in table {
        match section.as_str() {
            "server" => {
                if let Some(raw) = v.section::<RawServer>("server", value) {
                    v.server(raw, &mut config);
                }
            }
            "upstream" => {
                if let Some(raw) = v.section::<RawUpstream>("upstream", value) {
                    v.upstream(raw, &mut config);
                }
            }
            "simulator" => {
                if let Some(raw) = v.section::<RawSimulator>("simulator", value) {
                    v.simulator(raw, &mut config);
                }
            }
            "cache" => {
                if let Some(raw) = v.section::<RawCache>("cache", value) {
                    v.cache(raw, &mut config);
                }
            }
            "auth" => {
                if let Some(raw) = v.section::<RawAuth>("auth", value) {
                    v.auth(raw, &mut config);
                }
            }
            "limits" => {
                if let Some(raw) = v.section::<RawLimits>("limits", value) {
                    v.limits(raw, &mut config);
                }
            }
            "graphql" => {
                if let Some(raw) = v.section::<RawGraphql>("graphql", value) {
                    v.graphql(raw, &mut config);
                }
            }
            "log" => {
                if let Some(raw) = v.section::<RawLog>("log", value) {
                    v.log(raw, &mut config);
                }
            }
            other => v.problem(other, "unknown key"),
        }
    }
    v.cross_field(&config);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(v.problems))
    }
}

struct Validator {
    problems: Vec<Problem>,
}

/// A converter from a TOML value to a typed setting, with a message on failure.
type Convert<T> = fn(&Value) -> Result<T, String>;

impl Validator {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    fn has_problem(&self, key: &str) -> bool {
        self.problems.iter().any(|p| p.key == key)
    }

    fn section<T: DeserializeOwned>(&mut self, key: &str, value: Value) -> Option<T> {
        if !value.is_table() {
            self.problem(
                key,
                format!("expected a table of settings, found {}", describe(&value)),
            );
            return None;
        }
        match value.try_into::<T>() {
            Ok(raw) => Some(raw),
            Err(e) => {
                self.problem(key, e.message().to_owned());
                None
            }
        }
    }

    fn unknown(&mut self, prefix: &str, unknown: Unknown) {
        for key in unknown.into_keys() {
            self.problem(&format!("{prefix}.{key}"), "unknown key");
        }
    }

    /// Converts `raw` if present; on failure records the problem and keeps `current`.
    fn get<T>(&mut self, key: &str, raw: Raw, current: T, convert: Convert<T>) -> T {
        match raw {
            None => current,
            Some(value) => match convert(&value) {
                Ok(converted) => converted,
                Err(message) => {
                    self.problem(key, message);
                    current
                }
            },
        }
    }

    /// Like `get` for a count that must be at least 1.
    fn positive<T>(&mut self, key: &str, raw: Raw, current: T) -> T
    where
        T: TryFrom<i64> + FromStr + PartialOrd + From<u8> + Copy,
    {
        let value = self.get(key, raw, current, integer::<T>);
        if value < T::from(1) {
            self.problem(key, "must be at least 1");
        }
        value
    }

    fn positive_duration(&mut self, key: &str, raw: Raw, current: Duration) -> Duration {
        let value = self.get(key, raw, current, duration);
        if value.is_zero() {
            self.problem(key, "must be longer than 0s");
        }
        value
    }
}
