//! `/metrics` after real traffic: every family has one `# HELP` and one `# TYPE`
//! (checked here, so it fails without promtool too), the process families and
//! `devicegraph_build_info` are there, no gauge is exposed twice under two names, and
//! `promtool check metrics` finds nothing.
//!
//! promtool is `$DEVICEGRAPH_PROMTOOL`, else `promtool` on `PATH` (Debian's
//! `prometheus` package; `.ci/run` extracts it). Without one the promtool test says
//! so on stderr and passes, unless `CI=true` or `DEVICEGRAPH_REQUIRE_PROMTOOL=1`,
//! which make a missing promtool a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{ACCOUNT, TestApp, spawn_app};
use serde_json::json;

/// Some of everything: REST (found, not found, bad input), a batch, a campaign page,
/// GraphQL; then the exposition.
async fn scrape_after_traffic(app: &TestApp) -> String {
    let catalog = app.catalog();
    let imei = app.sample_imei(ACCOUNT, 1);
    for path in [
        format!("/v1/accounts/{ACCOUNT}/devices/{imei}?include=upgradeHistory,checkIns"),
        format!("/v1/accounts/{ACCOUNT}/devices/{imei}"),
        format!(
            "/v1/accounts/{ACCOUNT}/devices/{}",
            catalog.unknown_imeis[0]
        ),
        format!("/v1/accounts/{ACCOUNT}/devices/123"),
        "/no/such/route".to_owned(),
    ] {
        app.get(&path).await;
    }
    if let Some(campaign) = catalog.campaigns.iter().find(|c| c.account == ACCOUNT) {
        app.get(&format!(
            "/v1/accounts/{ACCOUNT}/campaigns/{}/devices?limit=5",
            campaign.id
        ))
        .await;
    }
    app.client
        .post(app.url(&format!("/v1/accounts/{ACCOUNT}/devices:batch")))
        .json(&json!({ "imeis": [imei] }))
        .send()
        .await
        .unwrap();
    app.graphql(
        "query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei firmware } }",
        json!({ "a": ACCOUNT, "i": imei }),
    )
    .await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

/// For each family: how many `# HELP` and `# TYPE` lines it has, and its type.
fn families(exposition: &str) -> BTreeMap<String, (usize, usize, String)> {
    let mut families: BTreeMap<String, (usize, usize, String)> = BTreeMap::new();
    for line in exposition.lines() {
        let mut words = line.splitn(4, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name), Some(help)) => {
                assert!(!help.trim().is_empty(), "{name}: empty HELP");
                families.entry(name.to_owned()).or_default().0 += 1;
            }
            (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                let family = families.entry(name.to_owned()).or_default();
                family.1 += 1;
                family.2 = kind.to_owned();
            }
            _ => {}
        }
    }
    families
}

#[tokio::test]
async fn every_family_has_help_and_one_type() {
    let app = spawn_app().await;
    let exposition = scrape_after_traffic(&app).await;
    let families = families(&exposition);
    assert!(families.len() >= 15, "{exposition}");
    for (name, (helps, types, _)) in &families {
        assert_eq!(
            (*helps, *types),
            (1, 1),
            "{name}: one # HELP and one # TYPE\n{exposition}"
        );
    }
    let kind = |name: &str| families.get(name).map(|f| f.2.as_str());
    assert_eq!(kind("devicegraph_http_requests_total"), Some("counter"));
    assert_eq!(
        kind("devicegraph_http_request_duration_seconds"),
        Some("histogram")
    );
    assert_eq!(kind("devicegraph_cache_bytes"), Some("gauge"));
    // The cache's size is one gauge: `devicegraph_cache_bytes`.
    assert_eq!(kind("devicegraph_cache_weighted_bytes"), None);
    if cfg!(target_os = "linux") {
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(kind(name).is_some(), "{name} missing\n{exposition}");
        }
    }
    let build_info = exposition
        .lines()
        .find(|l| l.starts_with("devicegraph_build_info{"))
        .unwrap_or_default();
    assert!(
        build_info.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build_info.contains("git_sha=\"")
            && build_info.ends_with(" 1"),
        "{build_info:?}"
    );
}

/// `$DEVICEGRAPH_PROMTOOL`, else `promtool` on `PATH`.
fn find_promtool() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DEVICEGRAPH_PROMTOOL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "DEVICEGRAPH_PROMTOOL={} is not a file",
            path.display()
        );
        return Some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("promtool"))
        .find(|path| path.is_file())
}

#[tokio::test]
async fn promtool_check_metrics_is_clean() {
    let Some(promtool) = find_promtool() else {
        let required = std::env::var("CI").as_deref() == Ok("true")
            || std::env::var("DEVICEGRAPH_REQUIRE_PROMTOOL").as_deref() == Ok("1");
        assert!(
            !required,
            "CI=true (or DEVICEGRAPH_REQUIRE_PROMTOOL=1) but no promtool: install Debian's \
             prometheus package or set DEVICEGRAPH_PROMTOOL (.ci/run does)"
        );
        // Straight to the process's stderr: libtest captures `eprintln!` of passing
        // tests, and a skip must never be silent.
        let _ = writeln!(
            std::io::stderr(),
            "skipping promtool check: promtool not found (set DEVICEGRAPH_PROMTOOL)"
        );
        return;
    };
    let app = spawn_app().await;
    let exposition = scrape_after_traffic(&app).await;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}): {said}\n--- exposition ---\n{exposition}",
        output.status
    );
}
