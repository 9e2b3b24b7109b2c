//! `[auth]` and its list of `[[auth.api_keys]]`: each key needs a unique name, a
//! unique SHA-256 and its accounts, and is kept only when all three are right.

use std::collections::{BTreeSet, HashSet};

use toml::Value;

use super::Validator;
use crate::config::convert::{auth_mode, boolean, describe, key_accounts, sha256_hex, string};
use crate::config::raw::{RawApiKey, RawAuth};
use crate::config::{ApiKey, Config, KeyAccounts};

impl Validator {
    pub(super) fn auth(&mut self, raw: RawAuth, config: &mut Config) {
        let a = &mut config.auth;
        a.mode = self.get("auth.mode", raw.mode, a.mode, auth_mode);
        a.admin_key_sha256 =
            self.get(
                "auth.admin_key_sha256",
                raw.admin_key_sha256,
                None,
                |v| match v {
                    Value::String(s) if s.trim().is_empty() => Ok(None),
                    other => sha256_hex(other).map(Some),
                },
            );
        a.allow_unauthenticated_public = self.get(
            "auth.allow_unauthenticated_public",
            raw.allow_unauthenticated_public,
            a.allow_unauthenticated_public,
            boolean,
        );
        if let Some(keys) = raw.api_keys {
            a.api_keys = self.api_keys(keys);
        }
        self.unknown("auth", raw.unknown);
    }

    fn api_keys(&mut self, value: Value) -> Vec<ApiKey> {
        let Value::Array(items) = value else {
            self.problem(
                "auth.api_keys",
                format!(
                    "expected a list of [[auth.api_keys]] tables, found {}",
                    describe(&value)
                ),
            );
            return Vec::new();
        };
        let mut keys = Vec::new();
        let mut names = HashSet::new();
        let mut hashes = HashSet::new();
        for (i, item) in items.into_iter().enumerate() {
            let prefix = format!("auth.api_keys[{i}]");
            let Some(raw) = self.section::<RawApiKey>(&prefix, item) else {
                continue;
            };
            let before = self.problems.len();
            let name = self.get(&format!("{prefix}.name"), raw.name, String::new(), string);
            if name.trim().is_empty() && !self.has_problem(&format!("{prefix}.name")) {
                self.problem(
                    &format!("{prefix}.name"),
                    "required (a label for logs and rate limits)",
                );
            } else if !names.insert(name.clone()) {
                self.problem(
                    &format!("{prefix}.name"),
                    format!("duplicate key name {name:?}"),
                );
            }
            let sha_key = format!("{prefix}.sha256");
            let sha256 = match raw.sha256 {
                None => {
                    self.problem(&sha_key, "required (hex SHA-256 of the key)");
                    [0; 32]
                }
                some => self.get(&sha_key, some, [0; 32], sha256_hex),
            };
            if !self.has_problem(&sha_key) && !hashes.insert(sha256) {
                self.problem(&sha_key, "the same key hash is listed twice");
            }
            let accounts_key = format!("{prefix}.accounts");
            let accounts = match raw.accounts {
                None => {
                    self.problem(&accounts_key, "required: account names, or [\"*\"] for all");
                    KeyAccounts::Only(BTreeSet::new())
                }
                some => self.get(
                    &accounts_key,
                    some,
                    KeyAccounts::Only(BTreeSet::new()),
                    key_accounts,
                ),
            };
            self.unknown(&prefix, raw.unknown);
            if self.problems.len() == before {
                keys.push(ApiKey {
                    name,
                    sha256,
                    accounts,
                });
            }
        }
        keys
    }
}
