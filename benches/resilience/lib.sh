# Shared by run.sh and soak.sh: build or find the binaries, start the simulator and
# the gateway as separate processes on loopback ports, talk to the simulator's
# control API, read /proc figures. Sourced, not run.
#
# Environment:
#   DEVICEGRAPH_BIN_DIR  directory holding `devicegraph` and `devicegraph-sim`; when
#                        set nothing is built (CI passes its debug build's directory)
#   CARGO_TARGET_DIR     where `cargo build --release` puts them otherwise
#   CARGO                the cargo command (default `cargo`; e.g. "flock /tmp/cargo.lock cargo")

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/devicegraph-resilience.XXXXXX")"
PIDS=()

log() { printf '%s\n' "$*" >&2; }
die() {
    log "resilience: ERROR: $*"
    exit 1
}

# `figure: <scenario> <name> = <value>`, the format the test suite prints too.
figure() {
    printf 'figure: %s %s = %s\n' "$1" "$2" "$3"
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found (${2:-install it})"
}

# Sets BIN_DIR: DEVICEGRAPH_BIN_DIR as it is, or a release build of this checkout.
binaries() {
    if [[ -n "${DEVICEGRAPH_BIN_DIR:-}" ]]; then
        BIN_DIR="$DEVICEGRAPH_BIN_DIR"
    else
        local target="${CARGO_TARGET_DIR:-$ROOT/target}"
        local start=$SECONDS
        (cd "$ROOT" && ${CARGO:-cargo} build --release -p devicegraph -p devicegraph-sim --bins)
        figure build release_build_seconds "$((SECONDS - start))"
        BIN_DIR="$target/release"
    fi
    [[ -x "$BIN_DIR/devicegraph" ]] || die "no $BIN_DIR/devicegraph"
    [[ -x "$BIN_DIR/devicegraph-sim" ]] || die "no $BIN_DIR/devicegraph-sim"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS WHAT CMD...: polls CMD every 0.1 s.
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out waiting for $what"
        sleep 0.1
    done
}

# start_sim DEVICES [flags...]: sets SIM_PID, SIM_ROOT (http://ADDR), SIM_BASE (…/api).
start_sim() {
    local devices=$1
    shift
    local logfile="$WORK/sim.log"
    "$BIN_DIR/devicegraph-sim" --listen 127.0.0.1:0 --devices "$devices" "$@" >"$logfile" 2>&1 &
    SIM_PID=$!
    PIDS+=("$SIM_PID")
    wait_until 120 "the simulator's banner" grep -q 'base URL http://' "$logfile"
    SIM_BASE="$(sed -n 's/.*base URL \(http:[^ ]*\).*/\1/p' "$logfile" | head -1)"
    SIM_ROOT="${SIM_BASE%/api}"
    log "simulator: $SIM_BASE (pid $SIM_PID, $devices devices)"
}

# start_gateway EXTRA_TOML: thingspace mode against the simulator; sets GW_PID, GW.
# EXTRA_TOML is appended to the config (whole sections; later keys of a section
# must not repeat the ones written here).
start_gateway() {
    local extra=${1:-}
    local port
    port="$(free_port)"
    GW="http://127.0.0.1:$port"
    cat >"$WORK/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$port"

[upstream]
mode = "thingspace"
base_url = "$SIM_BASE"
client_id = "sim-client"
client_secret = "sim-secret"
username = "sim-user"
password = "sim-password"
${UPSTREAM_TOML:-}

[limits]
# One load generator is one client: the inbound per-client limits would measure
# themselves, not resilience.
per_client_rps = 1000000
per_client_burst = 1000000
upstream_calls_per_minute = 1000000

[log]
level = "warn"

$extra
TOML
    env -u DEVICEGRAPH_CONFIG "$BIN_DIR/devicegraph" --config "$WORK/gateway.toml" serve \
        >"$WORK/gateway.log" 2>&1 &
    GW_PID=$!
    PIDS+=("$GW_PID")
    wait_until 60 "the gateway's /healthz" curl -fsS "$GW/healthz"
    wait_until 60 "the gateway's /readyz" curl -fsS "$GW/readyz"
    log "gateway: $GW (pid $GW_PID)"
}

# sim_faults JSON: POST /_sim/faults.
sim_faults() {
    curl -fsS -X POST "$SIM_ROOT/_sim/faults" -H 'content-type: application/json' -d "$1" >/dev/null
}

sim_reset() {
    curl -fsS -X POST "$SIM_ROOT/_sim/reset" >/dev/null
}

# sim_stat JQ: one value of /_sim/stats, e.g. '.peakConcurrency'.
sim_stat() {
    curl -fsS "$SIM_ROOT/_sim/stats" | jq -r "$1"
}

# Calls to the six data endpoints.
sim_data_calls() {
    sim_stat '[.calls | to_entries[] | select(.key != "oauth_token" and .key != "session_login") | .value] | add'
}

# metric NAME_AND_LABELS: the value of one sample of the gateway's /metrics, or "absent".
metric() {
    curl -fsS "$GW/metrics" | awk -v want="$1" 'index($0, want) == 1 { print $NF; found = 1; exit } END { if (!found) print "absent" }'
}

# proc_kib PID FIELD: VmRSS / VmHWM of a process in KiB.
proc_kib() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# Open file descriptors of a process (sockets among them).
proc_fds() {
    ls "/proc/$1/fd" | wc -l
}

# Open sockets of a process.
proc_sockets() {
    find "/proc/$1/fd" -lname 'socket:*' 2>/dev/null | wc -l
}

# account_imeis ACCOUNT N FILE: the first N IMEIs of ACCOUNT, from the simulator's
# own account device list (its own token and session; the gateway's cache stays cold).
account_imeis() {
    local account=$1 n=$2 file=$3
    local bearer session cursor=0 page
    bearer="$(curl -fsS -u sim-client:sim-secret -d grant_type=client_credentials \
        "$SIM_BASE/ts/v1/oauth2/token" | jq -r .access_token)"
    session="$(curl -fsS -H "authorization: Bearer $bearer" -H 'content-type: application/json' \
        -d '{"username":"sim-user","password":"sim-password"}' \
        "$SIM_BASE/m2m/v1/session/login" | jq -r .sessionToken)"
    : >"$file"
    while (($(wc -l <"$file") < n)); do
        page="$(curl -fsS -H "authorization: Bearer $bearer" -H "VZ-M2M-Token: $session" \
            "$SIM_BASE/fota/v3/devices/$account?lastSeenDeviceId=$cursor")"
        jq -r '.deviceList[].deviceId' <<<"$page" >>"$file"
        [[ "$(jq -r .hasMoreData <<<"$page")" == true ]] || break
        cursor="$(jq -r .lastSeenDeviceId <<<"$page")"
    done
    head -n "$n" "$file" >"$file.tmp" && mv "$file.tmp" "$file"
}

# percentiles FILE: "p50 p99 max" of the numbers in FILE (one a line), or "n/a".
percentiles() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a n/a n/a"; exit }
        i50 = int((NR - 1) * 0.50) + 1; i99 = int((NR - 1) * 0.99) + 1
        printf "%s %s %s\n", v[i50], v[i99], v[NR] }'
}
