//! The committed corpus of the `http` fuzz target (`fuzz/corpus/http/`, plus any
//! saved crash in `fuzz/regressions/http/`) replayed through the same check the
//! target runs (`fuzz/checks/http.rs`: the whole router over an unreachable upstream;
//! an answer within 2 s, no server fault, bounded and well-formed bodies), on stable,
//! in every `cargo test`. Fails if the corpus is missing or empty.

#[path = "../fuzz/checks/corpus.rs"]
mod corpus;
#[path = "../fuzz/checks/http.rs"]
mod http_check;

use std::path::Path;

#[test]
fn http_corpus_replays_clean() {
    let fuzz_dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"));
    let n = corpus::replay(fuzz_dir, "http", http_check::check);
    eprintln!("http: {n} inputs replayed");
}
