//! A real browser against the real gateway. Headless Chromium opens
//! `/graphql?autorun=1` of a server in simulator mode (the path `cargo run` takes); the
//! page runs the query it pre-fills, and the DOM Chromium ends with must show the
//! merged device in GraphiQL's result pane. With no internet access, that proves:
//! the page loads its embedded assets under its own Content-Security-Policy (no
//! violation reported), GraphiQL mounts, its fetcher reaches `/graphql`, and the
//! pre-filled device is one the simulator really has.
//!
//! Chromium is `$DEVICEGRAPH_CHROMIUM`, else `/usr/bin/chromium`. Without one the test
//! says so on stderr and passes, unless `DEVICEGRAPH_REQUIRE_BROWSER=1` (CI sets it),
//! which makes a missing browser a failure. `DEVICEGRAPH_BROWSER_SCREENSHOT=<file.png>`
//! also saves a screenshot of the page after the run.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use devicegraph::config::UpstreamMode;
use devicegraph_sim::SimConfig;
use serde_json::Value;

use common::{ACCOUNT, spawn_app_configured};

/// Where Debian's package puts it.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
/// Page time Chromium grants before dumping: timers run on a virtual clock (network
/// waits do not count), so this is not real waiting.
const VIRTUAL_TIME_BUDGET_MS: u32 = 10_000;
/// Real time after which a hung browser fails the test.
const BROWSER_DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn graphiql_runs_the_prefilled_query_in_a_real_browser() {
    let Some(chromium) = find_chromium() else {
        return;
    };
    // Simulator mode, as `cargo run` on a fresh clone. The helper's own simulator has
    // the same seed and size, so its catalog says which devices the embedded one has.
    let twin = SimConfig::default();
    let app = spawn_app_configured(|c| {
        c.upstream.mode = UpstreamMode::Simulator;
        c.simulator.seed = twin.seed;
        c.simulator.devices = twin.devices;
    })
    .await;
    let samples = app.catalog().sample_imeis[ACCOUNT].clone();

    // The page pre-fills a real device of the simulator.
    let page = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let imei = prefilled_imei(&page);
    assert!(
        samples.contains(&imei),
        "pre-filled IMEI {imei} is not a device of the simulator ({samples:?})"
    );

    let url = app.url("/graphql?autorun=1");
    let dom = chromium_run(&chromium, &["--dump-dom"], &url).await;
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();

    assert!(
        dom.contains("graphiql-container"),
        "GraphiQL did not mount:\n{}",
        excerpt(&dom)
    );
    assert!(
        dom.contains(r#"data-autorun="clicked""#),
        "the pre-filled query was not run:\n{}",
        excerpt(&dom)
    );
    assert!(
        !dom.contains("data-csp-violations"),
        "the page broke its Content-Security-Policy:\n{}",
        excerpt(&dom)
    );
    let result = result_pane(&dom)
        .unwrap_or_else(|| panic!("no GraphiQL result pane in the DOM:\n{}", excerpt(&dom)));
    // The merged device: details, upgrade history and last check-in in one answer.
    for expected in [
        format!(r#""imei": "{imei}""#),
        format!(r#""account": "{ACCOUNT}""#),
        r#""firmware": ""#.to_owned(),
        r#""upgradeHistory": ["#.to_owned(),
        r#""lastCheckIn": {"#.to_owned(),
    ] {
        assert!(
            result.contains(&expected),
            "result pane lacks {expected}: {result}"
        );
    }
    assert!(!result.contains(r#""errors""#), "errors: {result}");

    if let Some(path) = std::env::var_os("DEVICEGRAPH_BROWSER_SCREENSHOT") {
        let shot = format!("--screenshot={}", Path::new(&path).display());
        chromium_run(&chromium, &[&shot], &url).await;
        assert!(Path::new(&path).is_file(), "no screenshot at {path:?}");
        eprintln!("screenshot of GraphiQL saved to {path:?}");
    }
}

/// The browser to drive, or `None` (after saying why) when there is none and none is
/// required.
fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DEVICEGRAPH_CHROMIUM").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "DEVICEGRAPH_CHROMIUM={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let default = PathBuf::from(DEFAULT_CHROMIUM);
    if default.is_file() {
        return Some(default);
    }
    assert!(
        std::env::var("DEVICEGRAPH_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "DEVICEGRAPH_REQUIRE_BROWSER=1 but no browser: install chromium or set DEVICEGRAPH_CHROMIUM"
    );
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests,
    // and a skip must never be silent.
    let _ = writeln!(
        std::io::stderr(),
        "skipping browser test: chromium not found (set DEVICEGRAPH_CHROMIUM)"
    );
    None
}

/// Runs headless Chromium on `url` with a fresh profile and `extra` flags; fails the
/// test when it cannot start, hangs, or exits non-zero.
async fn chromium_run(chromium: &Path, extra: &[&str], url: &str) -> Output {
    let profile = fresh_dir("devicegraph-chromium");
    let mut command = tokio::process::Command::new(chromium);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"))
        .args(extra)
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromium.display()));
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// An empty directory of its own under the system temp dir.
fn fresh_dir(prefix: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The IMEI in the query the page pre-fills (from its JSON config block).
fn prefilled_imei(page: &str) -> String {
    const MARK: &str = r#"id="devicegraph-graphiql-config">"#;
    let start = page.find(MARK).expect("no config block in the page") + MARK.len();
    let end = start + page[start..].find("</script>").unwrap();
    let config: Value = serde_json::from_str(&page[start..end]).unwrap();
    let query = config["query"].as_str().unwrap();
    let after = query.split("imei: \"").nth(1).expect("no imei argument");
    after.split('"').next().unwrap().to_owned()
}

/// The text of GraphiQL's result pane: its `<section aria-label="Result Window">`
/// with the markup (CodeMirror's per-token spans) stripped and entities decoded.
fn result_pane(dom: &str) -> Option<String> {
    let start = dom.find(r#"aria-label="Result Window""#)?;
    let section = &dom[start..];
    let section = &section[..section.find("</section>")?];
    let mut text = String::with_capacity(section.len());
    let mut in_tag = true; // starts inside the section's opening tag
    for c in section.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(
        text.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&nbsp;", " ")
            .replace('\u{a0}', " ")
            .replace("&amp;", "&"),
    )
}

/// The start of a DOM dump, for failure messages.
fn excerpt(dom: &str) -> String {
    dom.chars().take(4_000).collect()
}
