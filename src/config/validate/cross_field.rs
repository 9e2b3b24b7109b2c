//! The rules between keys, run after every key is converted: secrets required in
//! thingspace mode, keys required in api_key mode, no open gateway on a public
//! address unless said out loud, no allow-list without a manifest. Each stays quiet
//! about a key that already has a problem.

use secrecy::ExposeSecret;

use super::Validator;
use crate::config::{AuthMode, Config, UpstreamMode};

impl Validator {
    pub(super) fn cross_field(&mut self, config: &Config) {
        let u = &config.upstream;
        if u.mode == UpstreamMode::Thingspace {
            let required: [(&str, bool); 4] = [
                ("client_id", u.client_id.trim().is_empty()),
                // Blank or whitespace-only secrets are as missing as empty ones.
                (
                    "client_secret",
                    u.client_secret.expose_secret().trim().is_empty(),
                ),
                ("username", u.username.trim().is_empty()),
                ("password", u.password.expose_secret().trim().is_empty()),
            ];
            for (name, missing) in required {
                let key = format!("upstream.{name}");
                if missing && !self.has_problem(&key) {
                    self.problem(
                        &key,
                        format!(
                            "required in thingspace mode (set DEVICEGRAPH_UPSTREAM__{})",
                            name.to_ascii_uppercase()
                        ),
                    );
                }
            }
        }
        if config.auth.mode == AuthMode::ApiKey
            && config.auth.api_keys.is_empty()
            && !self
                .problems
                .iter()
                .any(|p| p.key.starts_with("auth.api_keys"))
        {
            self.problem(
                "auth.api_keys",
                "at least one [[auth.api_keys]] entry is required when auth.mode = \"api_key\"",
            );
        }
        // An open gateway reachable from other machines is a mistake unless said
        // out loud: anyone who reaches the port spends the ThingSpace budget.
        if config.auth.mode == AuthMode::None
            && !config.server.listen.ip().is_loopback()
            && !config.auth.allow_unauthenticated_public
            && !self.has_problem("auth.mode")
            && !self.has_problem("server.listen")
        {
            self.problem(
                "auth.mode",
                format!(
                    "\"none\" on the non-loopback address {} lets anyone use the gateway; \
                     use auth.mode = \"api_key\", listen on loopback, or set \
                     auth.allow_unauthenticated_public = true",
                    config.server.listen
                ),
            );
        }
        if config.graphql.allow_list
            && config.graphql.trusted_documents.is_none()
            && !self.has_problem("graphql.trusted_documents")
        {
            self.problem(
                "graphql.allow_list",
                "needs graphql.trusted_documents (the manifest of the operations allowed)",
            );
        }
    }
}
