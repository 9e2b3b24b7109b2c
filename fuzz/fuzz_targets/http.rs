//! The HTTP and GraphQL request path end to end: any bytes become one request to the
//! whole router (`devicegraph::app`) over an unreachable upstream, which must answer
//! in bounded time with a bounded body and never with a server fault. The input
//! format and the invariant are documented in `fuzz/checks/http.rs`, which the stable
//! corpus replay test (`tests/fuzz_http_corpus.rs`) runs too.
#![no_main]

#[path = "../checks/http.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| checks::check(data));
