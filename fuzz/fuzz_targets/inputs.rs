//! What clients send: identifiers and timestamps. None may panic; whatever parses
//! must print back to a form that parses to the same value. The check lives in
//! `fuzz/checks/inputs.rs`, which the stable corpus replay test
//! (`crates/upstream/tests/fuzz_corpus.rs`) runs too.
#![no_main]

#[path = "../checks/inputs.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::check(data));
