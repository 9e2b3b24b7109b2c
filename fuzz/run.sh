#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other,
# and prints executions, exec/s, coverage and the outcome per target.
#
#   fuzz/run.sh [SECONDS] [TARGET...]        # default: 60 s; wire inputs http
#   fuzz/run.sh cmin [TARGET...]             # refresh the committed corpora
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Builds once
# (`cargo +nightly fuzz build -O`, AddressSanitizer), then runs the built binaries
# directly. Each target starts from its committed corpus (fuzz/corpus/<target>/, plus
# the upstream fixtures for `wire`), with fuzz/dicts/<target>.dict if there is one,
# and writes what it discovers to fuzz/target/corpus-work/<target>/ (ignored by git),
# never into the committed corpus; crashes go to fuzz/artifacts/<target>/ (ignored
# too: minimise one with `cargo +nightly fuzz tmin`, then keep it in
# fuzz/regressions/<target>/, which the replay tests run). Logs: fuzz/target/run-logs/.
# Exits non-zero if any target found a crash, a timeout or a memory blow-up.
#
# `cmin` replaces fuzz/corpus/<target>/ by a minimal set of files covering every edge
# that the committed corpus, the work corpus (and, for `wire`, the fixtures) cover
# (libFuzzer's -set_cover_merge=1 on edges only, -use_counters=0: a few hundred files
# rather than the thousands `cargo fuzz cmin` keeps for hit-count features). Hand-made
# `seed-*` files are always kept. Review `git status fuzz/corpus` before committing.
set -euo pipefail

mode=run
if [[ ${1:-} == cmin ]]; then
    mode=cmin
    shift
    secs=0
else
    secs=${1:-60}
    shift || true
fi
if [[ ! $secs =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS] [TARGET...] | $0 cmin [TARGET...]" >&2
    exit 2
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(wire inputs http)
fi

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz_dir"

# Longest input per target: ThingSpace pages, client identifiers, HTTP requests.
max_len() {
    case $1 in
        wire) echo 8192 ;;
        inputs) echo 128 ;;
        http) echo 4096 ;;
        *) echo 4096 ;;
    esac
}

cargo +nightly fuzz build -O
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir=$fuzz_dir/target/$triple/release
logs=$fuzz_dir/target/run-logs
mkdir -p "$logs"

if [[ $mode == cmin ]]; then
    for t in "${targets[@]}"; do
        fresh=$fuzz_dir/target/cmin/$t
        rm -rf "$fresh"
        mkdir -p "$fresh" "$fuzz_dir/target/corpus-work/$t"
        find "$fuzz_dir/corpus/$t" -maxdepth 1 -type f -name 'seed-*' -exec cp {} "$fresh/" \;
        inputs=("$fuzz_dir/corpus/$t" "$fuzz_dir/target/corpus-work/$t")
        if [[ $t == wire ]]; then
            inputs+=("$fuzz_dir/../crates/upstream/tests/fixtures")
        fi
        ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0} "$bin_dir/$t" \
            -set_cover_merge=1 -use_counters=0 -max_len="$(max_len "$t")" -timeout=10 \
            "$fresh" "${inputs[@]}" >"$logs/$t.cmin.log" 2>&1
        rm -rf "$fuzz_dir/corpus/$t"
        cp -r "$fresh" "$fuzz_dir/corpus/$t"
        echo "$t: $(find "$fuzz_dir/corpus/$t" -type f | wc -l) files," \
            "$(du -s --apparent-size -b "$fuzz_dir/corpus/$t" | cut -f1) bytes"
    done
    exit 0
fi

status=0
summary=()
for t in "${targets[@]}"; do
    if [[ ! -x $bin_dir/$t ]]; then
        echo "no such fuzz target: $t" >&2
        exit 2
    fi
    work=$fuzz_dir/target/corpus-work/$t
    mkdir -p "$work" "$fuzz_dir/artifacts/$t"
    seeds=("$fuzz_dir/corpus/$t")
    if [[ $t == wire ]]; then
        seeds+=("$fuzz_dir/../crates/upstream/tests/fixtures")
    fi
    dict=()
    if [[ -f $fuzz_dir/dicts/$t.dict ]]; then
        dict=(-dict="$fuzz_dir/dicts/$t.dict")
    fi
    log=$logs/$t.log
    echo "== $t: ${secs}s, log $log"
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0} "$bin_dir/$t" \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$fuzz_dir/artifacts/$t/" \
        "$work" "${seeds[@]}" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
    if [[ -z $execs ]]; then
        # No final stats (killed, or an old libFuzzer): the last "#N" status line.
        execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
    fi
    if [[ $rc -eq 0 ]]; then
        outcome=ok
    else
        status=1
        why=$(grep -E '^(SUMMARY|==[0-9]+== ERROR|thread .* panicked|ParseDictionaryFile)' "$log" |
            head -2 | tr '\n' ' ' || true)
        artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
        outcome="FINDING (exit $rc): ${why:-see the log}${artifact:+ artifact: $artifact}"
    fi
    summary+=("$(printf '%-7s %12s execs %8s exec/s  cov %-6s ft %-6s corpus %-12s rss %5s MB  %s' \
        "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$outcome")")
done

echo
echo "== summary (${secs}s per target)"
printf '%s\n' "${summary[@]}"
exit "$status"
