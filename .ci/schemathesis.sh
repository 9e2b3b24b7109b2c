#!/usr/bin/env bash
# schemathesis against the running gateway's own /openapi.json (issue 10).
#
# Starts the gateway binary on its embedded simulator on a free loopback port, twice:
# with auth off (the default config) and with auth.mode = "api_key" (a throw-away
# key), and runs schemathesis against each with a bounded number of examples per
# operation, a fixed seed and a time bound. Fails when schemathesis finds anything.
# Then promtool checks the /metrics all that traffic left.
#
#   bash .ci/schemathesis.sh                 # what .ci/run does
#   DEVICEGRAPH_ST_EXAMPLES=200 bash .ci/schemathesis.sh   # a longer local run
#
# The checks, and why each runs or not, are in .ci/schemathesis.toml.
#
# The document names two rules JSON Schema cannot state with a custom `format`
# (`imei`: Luhn; `devicegraph-cursor`: server-issued); .ci/schemathesis_hooks.py
# teaches schemathesis each. .ci/schemathesis.toml also keeps the stateful phase to
# the document's own links (a cursor belongs to the list that issued it).
#
# Environment: DEVICEGRAPH_BIN (default: $CARGO_TARGET_DIR or target, /debug/devicegraph,
# built when absent), DEVICEGRAPH_CI_VENV (default .ci/.venv; schemathesis is
# installed into it from .ci/schemathesis-requirements.txt), DEVICEGRAPH_ST_EXAMPLES
# (examples per operation, default 50), DEVICEGRAPH_ST_SEED (default 20261202),
# DEVICEGRAPH_ST_SECONDS (time bound of each run, default 420).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${DEVICEGRAPH_CI_VENV:-$ROOT/.ci/.venv}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${DEVICEGRAPH_BIN:-$TARGET/debug/devicegraph}"
EXAMPLES="${DEVICEGRAPH_ST_EXAMPLES:-50}"
SEED="${DEVICEGRAPH_ST_SEED:-20261202}"
SECONDS_BOUND="${DEVICEGRAPH_ST_SECONDS:-420}"
REQUIREMENTS="$ROOT/.ci/schemathesis-requirements.txt"

WORK="$(mktemp -d)"
GATEWAY_PID=""

log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

stop_gateway() {
    if [[ -n "$GATEWAY_PID" ]]; then
        kill "$GATEWAY_PID" 2>/dev/null || true
        wait "$GATEWAY_PID" 2>/dev/null || true
        GATEWAY_PID=""
    fi
}

cleanup() {
    stop_gateway
    rm -rf "$WORK"
}
trap cleanup EXIT

ensure_schemathesis() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        python3 -m venv "$VENV" || die "cannot create a venv at $VENV (python3-venv missing?)"
    fi
    local want
    want="$(grep -E '^schemathesis==' "$REQUIREMENTS" | cut -d= -f3)"
    if [[ "$("$VENV/bin/python" -m pip show schemathesis 2>/dev/null | awk '/^Version:/ { print $2 }')" != "$want" ]]; then
        "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQUIREMENTS"
    fi
    "$VENV/bin/schemathesis" --version >&2
}

ensure_binary() {
    if [[ ! -x "$BIN" ]]; then
        log "building $BIN"
        cargo build --bin devicegraph
    fi
    [[ -x "$BIN" ]] || die "no gateway binary at $BIN"
}

# start_gateway NAME [ENV=VALUE...]: the gateway on a free port, its banner in
# $WORK/NAME.out; sets BASE, ACCOUNT, CAMPAIGN, IMEI.
start_gateway() {
    local name="$1"
    shift
    env DEVICEGRAPH_SERVER__LISTEN=127.0.0.1:0 \
        DEVICEGRAPH_LOG__LEVEL=warn \
        "$@" "$BIN" serve >"$WORK/$name.out" 2>"$WORK/$name.err" &
    GATEWAY_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        grep -q 'OpenAPI:' "$WORK/$name.out" 2>/dev/null && break
        kill -0 "$GATEWAY_PID" 2>/dev/null || {
            cat "$WORK/$name.err" >&2
            die "the gateway exited during startup"
        }
        sleep 0.1
    done
    BASE="$(sed -n 's|^ *OpenAPI: *\(http://[^/]*\)/openapi.json$|\1|p' "$WORK/$name.out")"
    ACCOUNT="$(awk '/sample account:/ { print $3 }' "$WORK/$name.out")"
    CAMPAIGN="$(awk '/sample campaign:/ { print $3 }' "$WORK/$name.out")"
    [[ -n "$BASE" && -n "$ACCOUNT" && -n "$CAMPAIGN" ]] ||
        die "no banner from the gateway: $(cat "$WORK/$name.out" "$WORK/$name.err")"
    log "$name: gateway at $BASE (pid $GATEWAY_PID)"
}

# Some of the simulator's real IMEIs (the campaign's first page), for the hooks.
known_imeis() {
    local header=("$@")
    curl -sf "${header[@]}" "$BASE/v1/accounts/$ACCOUNT/campaigns/$CAMPAIGN/devices?limit=20" |
        "$VENV/bin/python" -c 'import json, sys; print(",".join(i["imei"] for i in json.load(sys.stdin)["items"]))'
}

# run_schemathesis NAME CONFIG [schemathesis args...]
run_schemathesis() {
    local name="$1" config="$2"
    shift 2
    log "$name: schemathesis, $EXAMPLES examples per operation, seed $SEED, at most ${SECONDS_BOUND}s"
    local rc=0
    # From the scratch directory: schemathesis keeps a crash cache in ./.schemathesis
    # that would replay this run's failures first next time (not a fixed-seed run).
    (cd "$WORK" && PYTHONPATH="$ROOT/.ci${PYTHONPATH:+:$PYTHONPATH}" \
        SCHEMATHESIS_HOOKS=schemathesis_hooks \
        timeout --kill-after=10 "$SECONDS_BOUND" \
        "$VENV/bin/schemathesis" --config-file "$config" \
        run "$BASE/openapi.json" \
        --max-examples "$EXAMPLES" \
        --seed "$SEED" \
        --generation-database none \
        --request-timeout 30 \
        --no-color \
        "$@") || rc=$?
    if [[ $rc == 124 || $rc == 137 ]]; then
        die "$name: schemathesis did not finish within ${SECONDS_BOUND}s"
    fi
    return "$rc"
}

# promtool on the /metrics that the run's traffic left (every route, every error),
# when there is one: $DEVICEGRAPH_PROMTOOL or promtool on PATH; required with
# DEVICEGRAPH_REQUIRE_PROMTOOL=1 (.ci/run sets it).
check_metrics() {
    local name="$1"
    shift
    local promtool="${DEVICEGRAPH_PROMTOOL:-$(command -v promtool || true)}"
    if [[ -z "$promtool" ]]; then
        [[ "${DEVICEGRAPH_REQUIRE_PROMTOOL:-}" != 1 ]] ||
            die "DEVICEGRAPH_REQUIRE_PROMTOOL=1 but no promtool (set DEVICEGRAPH_PROMTOOL)"
        log "$name: no promtool, /metrics not checked (set DEVICEGRAPH_PROMTOOL)"
        return 0
    fi
    curl -sf "$BASE/metrics" >"$WORK/$name.metrics" || die "$name: GET /metrics failed"
    if ! "$promtool" check metrics <"$WORK/$name.metrics"; then
        log "$name: promtool check metrics failed on this exposition:"
        cat "$WORK/$name.metrics" >&2
        return 1
    fi
    log "$name: promtool check metrics: clean ($(grep -c '^# TYPE' "$WORK/$name.metrics") families)"
}

CONFIG="$ROOT/.ci/schemathesis.toml"
# The api_key run's configuration: the same, with ignored_auth on.
sed 's/^ignored_auth.enabled = false$/ignored_auth.enabled = true/' "$CONFIG" >"$WORK/api_key.st.toml"
grep -q '^ignored_auth.enabled = true$' "$WORK/api_key.st.toml" ||
    die "could not turn ignored_auth on from $CONFIG"

# The fuzzer, not the per-client limits, is under test: lift them so a fast run is
# not answered 429 (their own tests are in tests/e2e_exposure.rs).
LIMITS=(
    DEVICEGRAPH_LIMITS__PER_CLIENT_RPS=100000
    DEVICEGRAPH_LIMITS__PER_CLIENT_BURST=100000
    DEVICEGRAPH_LIMITS__UPSTREAM_CALLS_PER_MINUTE=0
)

ensure_schemathesis
ensure_binary

failed=0

start_gateway open "${LIMITS[@]}"
DEVICEGRAPH_ST_IMEIS="$(known_imeis)" || die "could not read sample IMEIs"
export DEVICEGRAPH_ST_IMEIS
run_schemathesis open "$CONFIG" || failed=1
check_metrics open || failed=1
stop_gateway

KEY="schemathesis-$RANDOM$RANDOM"
cat >"$WORK/api_key.toml" <<EOF
[auth]
mode = "api_key"
[[auth.api_keys]]
name = "schemathesis"
sha256 = "$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)"
accounts = ["*"]
EOF
start_gateway api_key "${LIMITS[@]}" DEVICEGRAPH_CONFIG="$WORK/api_key.toml"
run_schemathesis api_key "$WORK/api_key.st.toml" -H "Authorization: Bearer $KEY" || failed=1
check_metrics api_key || failed=1
stop_gateway

if [[ $failed != 0 ]]; then
    die "schemathesis found failures (above)"
fi
log "no failures"
