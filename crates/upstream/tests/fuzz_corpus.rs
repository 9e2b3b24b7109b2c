//! The committed fuzz corpora of `wire` and `inputs` (`fuzz/corpus/<target>/`, plus
//! any saved crash in `fuzz/regressions/<target>/`) replayed through the very checks
//! the fuzz targets run (`fuzz/checks/`), on stable, in every `cargo test`. Fails if a
//! corpus is missing or empty, so it cannot pass by reading nothing.

#[path = "../../../fuzz/checks/corpus.rs"]
mod corpus;
#[path = "../../../fuzz/checks/inputs.rs"]
mod inputs;
#[path = "../../../fuzz/checks/wire.rs"]
mod wire;

use std::path::Path;

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz"))
}

#[test]
fn wire_corpus_replays_clean() {
    let n = corpus::replay(fuzz_dir(), "wire", wire::check);
    eprintln!("wire: {n} inputs replayed");
}

#[test]
fn inputs_corpus_replays_clean() {
    let n = corpus::replay(fuzz_dir(), "inputs", inputs::check);
    eprintln!("inputs: {n} inputs replayed");
}
