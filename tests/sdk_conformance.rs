//! Wire conformance with a client nobody here wrote: Verizon's public Python SDK
//! (`sdksio-verizon-apis-sdk`, pinned in `tests/conformance/requirements.txt`) is
//! pointed at an in-process simulator and must obtain both tokens and read all
//! six endpoints, every page of the paged ones (`tests/conformance/sdk_conformance.py`
//! does the calls and the assertions). Our own client and simulator could agree on a private dialect;
//! this test is what keeps the simulator honest about the real wire format.
//!
//! It needs a Python with the SDK installed, named by `DEVICEGRAPH_SDK_PYTHON`
//! (see README). Without it the test is skipped loudly, or fails when
//! `DEVICEGRAPH_REQUIRE_SDK=1` (as in `.ci/run`), so CI can never pass by skipping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use devicegraph_sim::SimConfig;
use tokio::process::Command;

/// Upper bound for the whole SDK run (a few dozen requests, campaign and account
/// pages, normally take a few seconds); a hang must fail the test, not CI's clock.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The Python interpreter that has the SDK, or `None` when the test should skip.
fn sdk_python() -> Option<PathBuf> {
    match std::env::var_os("DEVICEGRAPH_SDK_PYTHON") {
        Some(python) if !python.is_empty() => Some(PathBuf::from(python)),
        _ => {
            let required = std::env::var("DEVICEGRAPH_REQUIRE_SDK").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "DEVICEGRAPH_REQUIRE_SDK=1 but DEVICEGRAPH_SDK_PYTHON is not set: point it at a \
                 python with tests/conformance/requirements.txt installed (see README)"
            );
            // Straight to fd 2, not `eprintln!`: libtest captures the macros' output of
            // passing tests, and a skip must be visible in a plain `cargo test`.
            let _ = writeln!(
                std::io::stderr(),
                "skipping SDK conformance: DEVICEGRAPH_SDK_PYTHON not set (see README)"
            );
            None
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/sdk_conformance.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verizon_python_sdk_gets_both_tokens_and_reads_all_six_endpoints() {
    let Some(python) = sdk_python() else {
        return;
    };
    let sim = devicegraph_sim::spawn_on(SimConfig::default(), "127.0.0.1:0")
        .await
        .expect("start the simulator on a loopback port");
    let catalog_url = format!("http://{}/_sim/catalog", sim.addr);

    let child = Command::new(&python)
        .arg(script())
        .arg(sim.base_url())
        .arg(&catalog_url)
        // Keep the source tree clean of __pycache__ directories.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A timed-out run must not leave the interpreter behind.
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run DEVICEGRAPH_SDK_PYTHON={}: {e}",
                python.display()
            )
        });
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("SDK conformance script did not finish in {SCRIPT_TIMEOUT:?}"))
        .expect("collect the SDK conformance script's output");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    if !stderr.trim().is_empty() {
        eprintln!("{stderr}");
    }
    assert!(
        output.status.success(),
        "the Verizon SDK could not use the simulator ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // The script's last line is its verdict; guard against a script that exits 0 early.
    assert!(
        stdout.contains("OK: the Verizon SDK obtained both tokens and read all six endpoints"),
        "the SDK conformance script exited 0 without its final OK line:\n{stdout}"
    );
}
