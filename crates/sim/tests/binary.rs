//! The `devicegraph-sim` binary starts, prints its base URL, a sample and its memory.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn binary_prints_base_url_sample_and_memory() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devicegraph-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "3",
            "--devices",
            "20000",
            "--latency-ms",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("memory:");
        lines.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let text = lines.join("\n");
    assert!(text.contains("base URL http://127.0.0.1:"), "{text}");
    assert!(text.contains("/api"), "{text}");
    assert!(
        text.contains("sample: account 0000123456-00001 imei "),
        "{text}"
    );
    assert!(text.contains("sample: campaign "), "{text}");
    assert!(text.contains("memory: rss="), "{text}");
    assert!(text.contains("for 20000 devices"), "{text}");
}

#[test]
fn binary_refuses_bad_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_devicegraph-sim"))
        .args(["--listen", "127.0.0.1:0", "--error-rate", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("errorRate"));
}
