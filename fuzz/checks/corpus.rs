//! Replays a fuzz target's committed corpus through its check, for the stable
//! regression tests (`crates/upstream/tests/fuzz_corpus.rs`,
//! `tests/fuzz_http_corpus.rs`). Reads only regular files directly inside
//! `fuzz/corpus/<target>/` and, when present, `fuzz/regressions/<target>/`: no
//! symlinks, no subdirectories, nothing outside the repository.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The regular files directly in `dir`, sorted by name. Panics if `dir` is a symlink
/// or holds one.
fn files(dir: &Path) -> Vec<PathBuf> {
    let meta = fs::symlink_metadata(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(meta.is_dir(), "{} is not a directory", dir.display());
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = entry.path();
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!kind.is_symlink(), "{} is a symlink", path.display());
        if kind.is_file() {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Runs `check` on every file of `fuzz_dir/corpus/<target>` (which must exist and
/// hold at least one file) and of `fuzz_dir/regressions/<target>` (optional), and
/// fails naming every file whose check panicked. Returns how many inputs ran.
pub(crate) fn replay(fuzz_dir: &Path, target: &str, check: impl Fn(&[u8])) -> usize {
    let corpus = fuzz_dir.join("corpus").join(target);
    let mut inputs = files(&corpus);
    assert!(
        !inputs.is_empty(),
        "{} holds no corpus file: the replay would prove nothing",
        corpus.display()
    );
    let regressions = fuzz_dir.join("regressions").join(target);
    if regressions.exists() {
        inputs.extend(files(&regressions));
    }
    let mut failed = Vec::new();
    for path in &inputs {
        let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} `{target}` inputs fail their check (panic messages above):\n{}",
        failed.len(),
        inputs.len(),
        failed.join("\n")
    );
    inputs.len()
}
