//! Loader and validation tests: the shipped files load, env overrides apply, and a
//! broken config names every bad key at once.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;

const PRODUCTION_TOML: &str = include_str!("../../config/production.example.toml");

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn problems(text: &str, env: Vec<(String, String)>) -> Vec<String> {
    match Config::from_toml_str(text, "test.toml", env) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems(),
    }
}

#[test]
fn default_file_loads_as_the_builtin_defaults() {
    let config = Config::from_toml_str(DEFAULT_TOML, "default.toml", no_env()).unwrap();
    let builtin = Config::default();
    assert_eq!(config.server.listen, builtin.server.listen);
    assert_eq!(config.upstream.mode, UpstreamMode::Simulator);
    assert_eq!(config.cache.max_bytes, 256 << 20);
    assert_eq!(
        config.cache.ttl.get("check_ins"),
        Some(Duration::from_secs(60))
    );
    assert_eq!(config.limits.max_body_bytes, 1 << 20);
    assert!(config.graphql.graphiql && config.graphql.introspection);
    assert_eq!(config.auth.mode, AuthMode::None);
    assert_eq!(config.auth.admin_key_sha256, None);
    assert_eq!(config.cache.redis_url, None);
}

#[test]
fn production_example_needs_only_its_secrets() {
    let missing = problems(PRODUCTION_TOML, no_env());
    assert_eq!(
        missing,
        vec![
            "upstream.client_id: required in thingspace mode (set DEVICEGRAPH_UPSTREAM__CLIENT_ID)",
            "upstream.client_secret: required in thingspace mode (set DEVICEGRAPH_UPSTREAM__CLIENT_SECRET)",
            "upstream.username: required in thingspace mode (set DEVICEGRAPH_UPSTREAM__USERNAME)",
            "upstream.password: required in thingspace mode (set DEVICEGRAPH_UPSTREAM__PASSWORD)",
        ]
    );
    let config = Config::from_toml_str(
        PRODUCTION_TOML,
        "production.toml",
        env(&[
            ("DEVICEGRAPH_UPSTREAM__CLIENT_ID", "id"),
            ("DEVICEGRAPH_UPSTREAM__CLIENT_SECRET", "secret"),
            ("DEVICEGRAPH_UPSTREAM__USERNAME", "user"),
            ("DEVICEGRAPH_UPSTREAM__PASSWORD", "pw"),
        ]),
    )
    .unwrap();
    assert_eq!(config.upstream.mode, UpstreamMode::Thingspace);
    assert_eq!(config.upstream.client_secret.expose_secret(), "secret");
    assert!(!config.graphql.graphiql && !config.graphql.introspection);
    assert_eq!(config.auth.mode, AuthMode::ApiKey);
    assert_eq!(config.auth.api_keys.len(), 2);
    assert_eq!(config.auth.api_keys[1].accounts, KeyAccounts::All);
    assert!(config.auth.admin_key_sha256.is_some());
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(config.cache.redis_url.is_some());
}

#[test]
fn empty_file_is_the_defaults() {
    let config = Config::from_toml_str("", "empty", no_env()).unwrap();
    assert_eq!(config.upstream.burst, config.upstream.rate_per_second);
    assert_eq!(config.limits.per_client_burst, config.limits.per_client_rps);
}

#[test]
fn env_overrides_file_case_insensitively() {
    let config = Config::from_toml_str(
        DEFAULT_TOML,
        "default.toml",
        env(&[
            ("DEVICEGRAPH_SERVER__LISTEN", "0.0.0.0:9999"),
            // An open gateway on 0.0.0.0 must be allowed out loud.
            ("DEVICEGRAPH_AUTH__ALLOW_UNAUTHENTICATED_PUBLIC", "true"),
            ("DEVICEGRAPH_CACHE__TTL__CHECK_INS", "2m"),
            ("DEVICEGRAPH_UPSTREAM__MAX_CONCURRENCY", "8"),
            ("DEVICEGRAPH_GRAPHQL__GRAPHIQL", "false"),
            ("DEVICEGRAPH_Limits__Per_Client_Rps", "7"),
            ("DEVICEGRAPH_CONFIG", "/not/a/key.toml"),
        ]),
    )
    .unwrap();
    assert_eq!(config.server.listen.port(), 9999);
    assert_eq!(
        config.cache.ttl.get("check_ins"),
        Some(Duration::from_secs(120))
    );
    assert_eq!(config.upstream.max_concurrency, 8);
    assert!(!config.graphql.graphiql);
    assert_eq!(config.limits.per_client_rps, 7);
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let text = r#"
[server]
listen = "not an address"

[upstream]
mode = "thingspace"
timeout = "soon"
max_concurrency = 0

[cache]
max_bytes = "lots"
[cache.tll]
check_ins = "1m"
[cache.ttl]
check_ins = "fast"

[limits]
per_client_rps = "many"

[log]
format = "xml"

[graphql]
graphiql = "yes"
colour = "blue"

[surprise]
x = 1
"#;
    let found = problems(text, no_env());
    let expect_prefixes = [
        "server.listen: invalid address \"not an address\"",
        "upstream.timeout: invalid duration \"soon\"",
        "upstream.max_concurrency: must be at least 1",
        "upstream.client_secret: required in thingspace mode (set DEVICEGRAPH_UPSTREAM__CLIENT_SECRET)",
        "cache.max_bytes: invalid size \"lots\"",
        "cache.tll: unknown key",
        "cache.ttl.check_ins: invalid duration \"fast\"",
        "limits.per_client_rps: expected a whole number, found \"many\"",
        "log.format: expected \"human\" or \"json\"",
        "graphql.graphiql: expected true or false",
        "graphql.colour: unknown key",
        "surprise: unknown key",
    ];
    for prefix in expect_prefixes {
        assert!(
            found.iter().any(|p| p.starts_with(prefix)),
            "missing {prefix:?} in {found:#?}"
        );
    }
}

#[test]
fn env_values_are_validated_like_file_values() {
    let found = problems(
        "",
        env(&[
            ("DEVICEGRAPH_UPSTREAM__TIMEOUT", "fast"),
            ("DEVICEGRAPH_CACHE__TLL", "1m"),
        ]),
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("cache.tll: unknown key"), "{found:?}");
    assert!(
        found[1].starts_with("upstream.timeout: invalid duration \"fast\""),
        "{found:?}"
    );
}

#[test]
fn api_keys_are_checked_one_by_one() {
    let good = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let text = format!(
        r#"
[auth]
mode = "api_key"
admin_key_sha256 = "abc"
[[auth.api_keys]]
name = "ok"
sha256 = "{good}"
accounts = ["0000123456-00001"]
[[auth.api_keys]]
name = "bad"
sha256 = "nothex"
accounts = ["*", "0000123456-00001"]
[[auth.api_keys]]
sha256 = "{good}"
accounts = ["bad account!"]
"#
    );
    let found = problems(&text, no_env());
    for prefix in [
        "auth.admin_key_sha256: expected 64 hex digits",
        "auth.api_keys[1].sha256: expected 64 hex digits",
        "auth.api_keys[1].accounts: \"*\" means every account",
        "auth.api_keys[2].name: required",
        "auth.api_keys[2].accounts: invalid account",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(prefix)),
            "missing {prefix:?} in {found:#?}"
        );
    }
}

#[test]
fn api_key_mode_needs_a_key() {
    let found = problems("[auth]\nmode = \"api_key\"\n", no_env());
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("auth.api_keys: at least one"),
        "{found:?}"
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let err = Config::from_toml_str("[server]\nlisten = \n", "broken.toml", no_env()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("broken.toml: not valid TOML: line 2"),
        "{text}"
    );
}

#[test]
fn a_section_that_is_not_a_table_is_named() {
    let found = problems("server = 5\n", no_env());
    assert_eq!(
        found,
        vec!["server: expected a table of settings, found integer 5"]
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = Config::from_toml_str(
        "[upstream]\nclient_secret = \"hunter2\"\npassword = \"swordfish\"\n",
        "t",
        no_env(),
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("swordfish"),
        "{debug}"
    );
}

#[test]
fn missing_file_is_a_read_error() {
    let err = Config::load(Path::new("/definitely/not/here.toml"), no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/definitely/not/here.toml"));
}

#[test]
fn an_open_gateway_on_a_public_address_is_refused_unless_said_out_loud() {
    let open = "[server]\nlisten = \"0.0.0.0:8080\"\n[auth]\nmode = \"none\"\n";
    let found = problems(open, no_env());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("auth.mode: "), "{found:?}");
    assert!(
        found[0].contains("auth.allow_unauthenticated_public"),
        "the message names the flag: {found:?}"
    );
    // The flag, from the file or the environment, accepts it.
    let flagged = format!("{open}allow_unauthenticated_public = true\n");
    let config = Config::from_toml_str(&flagged, "t", no_env()).unwrap();
    assert!(config.auth.allow_unauthenticated_public);
    let env_flag = env(&[("DEVICEGRAPH_AUTH__ALLOW_UNAUTHENTICATED_PUBLIC", "true")]);
    assert!(Config::from_toml_str(open, "t", env_flag).is_ok());
    // Loopback needs no flag; api_key mode on a public address neither.
    assert!(problems("[server]\nlisten = \"127.0.0.1:8080\"\n", no_env()).is_empty());
    let keyed = "[server]\nlisten = \"0.0.0.0:8080\"\n[auth]\nmode = \"api_key\"\n\
                 [[auth.api_keys]]\nname = \"k\"\n\
                 sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n\
                 accounts = [\"*\"]\n";
    assert!(problems(keyed, no_env()).is_empty());
}

#[test]
fn a_whitespace_only_secret_is_missing() {
    let text = "[upstream]\nmode = \"thingspace\"\nclient_id = \"id\"\nusername = \"u\"\n";
    let found = problems(
        text,
        env(&[
            ("DEVICEGRAPH_UPSTREAM__CLIENT_SECRET", "  \t "),
            ("DEVICEGRAPH_UPSTREAM__PASSWORD", "pw"),
        ]),
    );
    assert_eq!(
        found,
        vec![
            "upstream.client_secret: required in thingspace mode (set DEVICEGRAPH_UPSTREAM__CLIENT_SECRET)"
        ]
    );
}

#[test]
fn a_bad_cors_origin_is_named() {
    for bad in [
        "[\"dash.example.com\"]",
        "[\"https://dash.example.com/app\"]",
        "[\"ftp://dash.example.com\"]",
        "[\"*\", \"https://dash.example.com\"]",
        "\"https://dash.example.com\"",
    ] {
        let found = problems(&format!("[server]\ncors_origins = {bad}\n"), no_env());
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(
            found[0].starts_with("server.cors_origins: "),
            "{bad}: {found:?}"
        );
    }
    let config = Config::from_toml_str(
        "[server]\ncors_origins = [\"https://dash.example.com\", \"http://localhost:3000\"]\n",
        "t",
        no_env(),
    )
    .unwrap();
    assert_eq!(config.server.cors_origins.len(), 2);
    assert!(
        Config::from_toml_str(DEFAULT_TOML, "d", no_env())
            .unwrap()
            .server
            .cors_origins
            .is_empty()
    );
}

#[test]
fn the_summary_masks_credentials_in_urls() {
    let config = Config::from_toml_str(
        "[upstream]\nbase_url = \"https://svc:hunter2@thingspace.example/api\"\n\
         [cache]\nredis_url = \"redis://:swordfish@cache.internal:6379/0\"\n",
        "t",
        no_env(),
    )
    .unwrap();
    let mut config = config;
    config.upstream.mode = UpstreamMode::Thingspace;
    let summary = config.summary();
    assert!(
        !summary.contains("hunter2") && !summary.contains("swordfish"),
        "{summary}"
    );
    assert!(
        summary.contains("https://svc:***@thingspace.example/api"),
        "{summary}"
    );
    assert!(
        summary.contains("redis://:***@cache.internal:6379/0"),
        "{summary}"
    );
}

#[test]
fn url_redaction() {
    assert_eq!(
        redact_url("redis://:pw@host:6379/0"),
        "redis://:***@host:6379/0"
    );
    assert_eq!(redact_url("redis://user:pw@host"), "redis://user:***@host");
    assert_eq!(redact_url("https://token@host/api"), "https://***@host/api");
    assert_eq!(redact_url("https://host/api"), "https://host/api");
    // Not a URL: everything up to the last `@` is masked.
    assert_eq!(redact_url("user:p@ss word@host"), "***@host");
    assert_eq!(
        redact_urls("invalid URL \"https://u:p/w#d@host\" (x), see redis://h:1 and rediss://:s3@r"),
        "invalid URL \"https://u:***@host\" (x), see redis://h:1 and rediss://:***@r"
    );
    assert_eq!(redact_urls("no urls here"), "no urls here");
}

#[test]
fn url_problems_never_quote_a_password() {
    for (key, value) in [
        (
            "upstream.base_url",
            "ftp://svc:hunter2@thingspace.example/api",
        ),
        ("upstream.base_url", "https://svc:hunter2@[bad host/api"),
        ("upstream.base_url", "svc:hunter2@thingspace.example"),
        ("cache.redis_url", "redis://:hunter2@[bad host:6379"),
        ("cache.redis_url", "http://:hunter2@cache.internal"),
    ] {
        let (section, name) = key.split_once('.').unwrap();
        let found = problems(&format!("[{section}]\n{name} = \"{value}\"\n"), no_env());
        assert_eq!(found.len(), 1, "{value}: {found:?}");
        assert!(found[0].starts_with(key), "{found:?}");
        assert!(!found[0].contains("hunter2"), "{found:?}");
    }
}

/// Every cached resource has its `[cache.ttl]` key, documented in default.toml with
/// its default value (the keys come from the cache's resource list, so a new
/// resource is configurable without touching the config code).
#[test]
fn default_file_names_every_resource_ttl() {
    let builtin = Config::default();
    let from_file = Config::from_toml_str(DEFAULT_TOML, "default.toml", no_env()).unwrap();
    for name in builtin.cache.ttl.names() {
        assert!(
            DEFAULT_TOML.contains(&format!("\n{name} = ")),
            "config/default.toml does not document cache.ttl.{name}"
        );
        assert_eq!(
            from_file.cache.ttl.get(name),
            builtin.cache.ttl.get(name),
            "{name}"
        );
    }
    assert_eq!(
        from_file.cache.ttl.get("account_devices"),
        Some(Duration::from_secs(300))
    );
    let set = Config::from_toml_str(
        DEFAULT_TOML,
        "default.toml",
        env(&[("DEVICEGRAPH_CACHE__TTL__ACCOUNT_DEVICES", "2m")]),
    )
    .unwrap();
    assert_eq!(
        set.cache.ttl.get("account_devices"),
        Some(Duration::from_secs(120))
    );
}
