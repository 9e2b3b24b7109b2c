//! Every ThingSpace reply parser on arbitrary bytes: none may panic, and a failure
//! must name a well-formed field path. The check lives in `fuzz/checks/wire.rs`, which
//! the stable corpus replay test (`crates/upstream/tests/fuzz_corpus.rs`) runs too.
#![no_main]

#[path = "../checks/wire.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| checks::check(body));
