//! Apollo Client 4 in Node against the real gateway: `tests/apollo/test.mjs` proves
//! that devices normalize in an `InMemoryCache` with no `typePolicies`, that a device
//! fetched through a campaign page reads back complete from the cache alone, and that
//! the same device fetched by `device(account:, imei:)`, through the campaign page and
//! by `node(id:)` is one cache entry. Here the gateway runs on the simulator and the
//! upstream calls the script caused are counted: the device and node queries after
//! the campaign page are answered from the entries the page filled.
//!
//! Needs `node` (20 or later; `$DEVICEGRAPH_NODE`, else `node` on `PATH`) and
//! `tests/apollo/node_modules` (`npm ci --prefix tests/apollo`). Without them the test
//! says so on stderr and passes, unless `DEVICEGRAPH_REQUIRE_APOLLO=1` (set by
//! `.ci/run`) or `CI=true`, which make a missing tool a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{ACCOUNT, spawn_app};

/// Real time after which a hung script fails the test.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn apollo_client_normalizes_devices_with_no_type_policies() {
    let Some(node) = find_node() else {
        return;
    };
    let app = spawn_app().await;
    let campaign = app
        .catalog()
        .campaigns
        .into_iter()
        .filter(|c| c.account == ACCOUNT && c.devices >= 5)
        .min_by_key(|c| c.devices)
        .unwrap();

    let mut command = tokio::process::Command::new(&node);
    command
        .arg("test.mjs")
        .current_dir(apollo_dir())
        .env("DEVICEGRAPH_URL", &app.base)
        .env("DEVICEGRAPH_ACCOUNT", ACCOUNT)
        .env("DEVICEGRAPH_CAMPAIGN", &campaign.id)
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCRIPT_DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("test.mjs did not finish within {SCRIPT_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", node.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "test.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("apollo: ok"), "{stdout}\n{stderr}");
    let _ = writeln!(std::io::stderr(), "{}", stdout.trim());

    // The campaign page cost one report page and one details batch; device(),
    // node() and nodes() after it found everything in the cache.
    assert_eq!(app.calls("campaign_devices").await, 1);
    assert_eq!(app.calls("device_details").await, 1);
}

fn apollo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apollo")
}

fn required() -> bool {
    std::env::var("DEVICEGRAPH_REQUIRE_APOLLO").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true")
}

/// Node with the script's dependencies installed, or `None` (after saying why) when
/// either is missing and neither is required.
fn find_node() -> Option<PathBuf> {
    let node = std::env::var_os("DEVICEGRAPH_NODE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"));
    let version = std::process::Command::new(&node)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let installed = apollo_dir().join("node_modules/@apollo/client/package.json");
    let missing = match &version {
        None => Some(format!(
            "{} not found or does not run (install Node 20+ or set DEVICEGRAPH_NODE)",
            node.display()
        )),
        Some(_) if !installed.is_file() => Some(format!(
            "{} missing (run `npm ci --prefix tests/apollo`)",
            installed.display()
        )),
        Some(_) => None,
    };
    let Some(missing) = missing else {
        return Some(node);
    };
    assert!(
        !required(),
        "DEVICEGRAPH_REQUIRE_APOLLO=1 or CI=true, but the Apollo test cannot run: {missing}"
    );
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests,
    // and a skip must never be silent.
    let _ = writeln!(std::io::stderr(), "skipping Apollo Client test: {missing}");
    None
}
