#![allow(clippy::unwrap_used)]
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn nests_on_double_underscore_and_lowercases() {
    let mut table = Table::new();
    let mut problems = Vec::new();
    apply(
        &mut table,
        env(&[
            ("DEVICEGRAPH_UPSTREAM__CLIENT_SECRET", "s3cret"),
            ("DEVICEGRAPH_CACHE__TTL__CHECK_INS", "2m"),
            ("DEVICEGRAPH_CONFIG", "/etc/devicegraph.toml"),
            ("DEVICEGRAPH_REQUIRE_REDIS", "1"),
            ("HOME", "/root"),
        ]),
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(table["upstream"]["client_secret"].as_str(), Some("s3cret"));
    assert_eq!(table["cache"]["ttl"]["check_ins"].as_str(), Some("2m"));
    assert!(!table.contains_key("config"));
    assert!(
        !table.contains_key("require_redis"),
        "not a SECTION__KEY variable"
    );
    assert!(!table.contains_key("home"));
}

#[test]
fn overrides_file_values() {
    let mut table: Table = toml::from_str("[server]\nlisten = \"127.0.0.1:1\"").unwrap();
    let mut problems = Vec::new();
    apply(
        &mut table,
        env(&[("DEVICEGRAPH_SERVER__LISTEN", "0.0.0.0:9")]),
        &mut problems,
    );
    assert_eq!(table["server"]["listen"].as_str(), Some("0.0.0.0:9"));
}

#[test]
fn inline_arrays_become_toml() {
    let mut table = Table::new();
    let mut problems = Vec::new();
    apply(
        &mut table,
        env(&[(
            "DEVICEGRAPH_AUTH__API_KEYS",
            r#"[{name = "a", sha256 = "00", accounts = ["*"]}]"#,
        )]),
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(table["auth"]["api_keys"][0]["name"].as_str(), Some("a"));
}

#[test]
fn reports_keys_it_cannot_place() {
    let mut table: Table = toml::from_str("[server]\nlisten = \"127.0.0.1:1\"").unwrap();
    let mut problems = Vec::new();
    apply(
        &mut table,
        env(&[
            ("DEVICEGRAPH_SERVER__LISTEN__PORT", "1"),
            ("DEVICEGRAPH___X", "1"),
            ("DEVICEGRAPH_AUTH__API_KEYS", "[unclosed"),
            ("DEVICEGRAPH_UPSTREAM_CLIENT_SECRET", "s"),
        ]),
        &mut problems,
    );
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 4, "{text:?}");
    assert!(
        text.iter()
            .any(|p| p.starts_with("DEVICEGRAPH_UPSTREAM_CLIENT_SECRET:")
                && p.contains("DEVICEGRAPH_UPSTREAM__CLIENT_SECRET")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|p| p.starts_with("server.listen.port:")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|p| p.starts_with("auth.api_keys:")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|p| p.starts_with("DEVICEGRAPH___X:")),
        "{text:?}"
    );
}
