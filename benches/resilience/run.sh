#!/usr/bin/env bash
# The long versions of the fault suite's scenarios 1 and 5 (RESILIENCE.md), with
# the gateway and the simulator as separate release processes on loopback ports,
# wrk for load, curl on the simulator's /_sim/faults for faults, and the figures
# read from /_sim/stats, the gateway's /metrics and /proc/<pid>/status.
#
#   bash benches/resilience/run.sh            # both scenarios (about 4 minutes after the build)
#   bash benches/resilience/run.sh 1          # scenario 1 only; `5` for scenario 5
#
# Prints `figure: <scenario> <name> = <value>` lines and `check:` lines; exits 1
# when a check fails. Needs wrk (Debian package `wrk`), curl, jq and python3.
# Knobs: S1_SECONDS (120), S5_SECONDS (60), S5_CLIENTS (200), S5_MAX_CONCURRENCY
# (64, the default), DEVICEGRAPH_BIN_DIR (prebuilt binaries; see lib.sh),
# KEEP_WORK=1 (keep the logs).
source "$(dirname "$0")/lib.sh"
HERE="$ROOT/benches/resilience"
ACCOUNT="0000123456-00001"
S1_SECONDS="${S1_SECONDS:-120}"
S5_SECONDS="${S5_SECONDS:-60}"
S5_CLIENTS="${S5_CLIENTS:-200}"
S5_MAX_CONCURRENCY="${S5_MAX_CONCURRENCY:-64}"
FAILED=0

if ! command -v wrk >/dev/null 2>&1; then
    log "resilience: wrk not found, skipping (install Debian's \`wrk\` package: apt-get install wrk)"
    exit 0
fi
need curl
need jq
need python3

check() { # check NAME PASS|FAIL DETAIL
    printf 'check: %s %s (%s)\n' "$1" "$2" "$3"
    [[ "$2" == PASS ]] || FAILED=1
}

# wrk_counts NAME KEYS_FILE CONNECTIONS SECONDS PAUSE_MS: wrk over the keys,
# output in $WORK/NAME.out.
wrk_counts() {
    local name=$1 keys=$2 conns=$3 secs=$4 pause=$5
    local script="$WORK/$name.lua"
    {
        printf 'account = "%s"\npause_ms = %d\nkeys = {\n' "$ACCOUNT" "$pause"
        sed 's/.*/"&",/' "$keys"
        printf '}\n'
        cat "$HERE/counts.lua"
    } >"$script"
    local threads=$((conns < 2 ? conns : 2))
    wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout 30s --latency -s "$script" "$GW" \
        >"$WORK/$name.out" 2>&1
}

# count NAME FIELD: a number of the `counts` line of a wrk run.
count() {
    sed -n "s/^counts .*\\b$2=\\([0-9]*\\).*/\\1/p" "$WORK/$1.out"
}

# wrk_latency NAME PCT: "12.3ms" from wrk's latency distribution.
wrk_latency() {
    awk -v p="$2%" '$1 == p { print $2; exit }' "$WORK/$1.out"
}

wrk_socket_errors() {
    local line
    line="$(sed -n 's/^ *Socket errors: //p' "$WORK/$1.out" | head -1)"
    echo "${line:-none}"
}

scenario_1() {
    local S=s1
    log "== scenario 1: ThingSpace down for ${S1_SECONDS}s after warm-up"
    sim_reset
    start_gateway '[cache]
stale_while_revalidate = "0s"

[cache.ttl]
device_details = "2s"'
    account_imeis "$ACCOUNT" 10050 "$WORK/keys"
    head -n 50 "$WORK/keys" >"$WORK/warm"
    tail -n +51 "$WORK/keys" >"$WORK/cold"
    local imei
    while read -r imei; do
        curl -fsS -o /dev/null "$GW/v1/accounts/$ACCOUNT/devices/$imei"
    done <"$WORK/warm"

    sim_faults '{"errorRate": 1.0}'
    sleep 2.5 # past the warm keys' TTL
    local calls0
    calls0="$(sim_data_calls)"
    wrk_counts s1_warm "$WORK/warm" 2 "$S1_SECONDS" 20 &
    local warm_pid=$!
    wrk_counts s1_cold "$WORK/cold" 2 "$S1_SECONDS" 20 &
    local cold_pid=$!
    sleep $((S1_SECONDS / 2))
    local ready_code circuit
    ready_code="$(curl -s -o "$WORK/readyz" -w '%{http_code}' "$GW/readyz")"
    circuit="$(metric 'devicegraph_upstream_circuit_state{endpoint="device_details"}')"
    wait "$warm_pid" "$cold_pid"
    local calls1
    calls1="$(sim_data_calls)"

    sim_faults '{"clear": true}'
    local started=$SECONDS recovered="not within 90 s" probe
    probe="$(sed -n 1p "$WORK/cold")"
    while ((SECONDS - started < 90)); do
        if [[ "$(curl -s -o /dev/null -w '%{http_code}' "$GW/v1/accounts/$ACCOUNT/devices/$probe")" == 200 ]]; then
            recovered="$((SECONDS - started)) s"
            break
        fi
        sleep 0.2
    done

    local warm_total warm_stale cold_total cold_503 cold_ra requests calls
    warm_stale="$(count s1_warm stale)"
    warm_total=$((warm_stale + $(count s1_warm ok) + $(count s1_warm s503) + $(count s1_warm other)))
    cold_503="$(count s1_cold s503)"
    cold_ra="$(count s1_cold s503_retry_after)"
    cold_total=$((cold_503 + $(count s1_cold ok) + $(count s1_cold stale) + $(count s1_cold other)))
    requests=$((warm_total + cold_total))
    calls=$((calls1 - calls0))
    figure $S outage_seconds "$S1_SECONDS"
    figure $S requests_while_down "$requests"
    figure $S upstream_calls_while_down "$calls"
    figure $S warm_answered_stale "$warm_stale/$warm_total"
    figure $S warm_p50 "$(wrk_latency s1_warm 50)"
    figure $S warm_p99 "$(wrk_latency s1_warm 99)"
    figure $S cold_answered_503 "$cold_503/$cold_total"
    figure $S cold_503_with_retry_after "$cold_ra/$cold_503"
    figure $S cold_p50 "$(wrk_latency s1_cold 50)"
    figure $S cold_p99 "$(wrk_latency s1_cold 99)"
    figure $S readyz_while_down "$ready_code $(tr -d '\n' <"$WORK/readyz" | head -c 300)"
    figure $S circuit_state_while_down "$circuit"
    figure $S recovered_after "$recovered"
    figure $S gateway_vmhwm_kib "$(proc_kib "$GW_PID" VmHWM)"
    [[ "$warm_stale" == "$warm_total" ]] && check s1.warm_stale PASS "$warm_stale/$warm_total" ||
        check s1.warm_stale FAIL "$warm_stale/$warm_total"
    [[ "$cold_503" == "$cold_total" ]] && check s1.cold_unavailable PASS "$cold_503/$cold_total" ||
        check s1.cold_unavailable FAIL "$cold_503/$cold_total"
    ((calls * 5 < requests)) && check s1.probes_not_requests PASS "$calls calls for $requests requests" ||
        check s1.probes_not_requests FAIL "$calls calls for $requests requests"
    [[ "$ready_code" == 200 ]] && check s1.ready_while_down PASS "$ready_code" ||
        check s1.ready_while_down FAIL "$ready_code"
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
}

scenario_5() {
    local S=s5
    log "== scenario 5: ThingSpace at 2 s per call, $S5_CLIENTS clients for ${S5_SECONDS}s"
    sim_reset
    UPSTREAM_TOML="max_concurrency = $S5_MAX_CONCURRENCY" start_gateway ''
    [[ -s "$WORK/keys100k" ]] || account_imeis "$ACCOUNT" 100000 "$WORK/keys100k"
    sim_reset
    sim_faults '{"latencyMs": 2000}'
    local rss0 fds0
    rss0="$(proc_kib "$GW_PID" VmRSS)"
    fds0="$(proc_fds "$GW_PID")"

    wrk_counts s5 "$WORK/keys100k" "$S5_CLIENTS" "$S5_SECONDS" 0 &
    local wrk_pid=$!
    # One more client measuring each answer's latency, and the gateway's memory and
    # descriptors, while wrk runs.
    : >"$WORK/s5_samples"
    : >"$WORK/s5_proc"
    local started=$SECONDS i=0 imei samplers=()
    while kill -0 "$wrk_pid" 2>/dev/null; do
        i=$((i + 1))
        imei="$(sed -n "$((99000 + i % 1000))p" "$WORK/keys100k")"
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
            "$GW/v1/accounts/$ACCOUNT/devices/$imei" >>"$WORK/s5_samples" &
        samplers+=("$!")
        printf '%s %s %s\n' "$(proc_kib "$GW_PID" VmRSS)" "$(proc_fds "$GW_PID")" \
            "$(proc_sockets "$GW_PID")" >>"$WORK/s5_proc"
        sleep 0.5
    done
    wait "$wrk_pid" || true
    wait "${samplers[@]}" || true
    local elapsed=$((SECONDS - started))
    awk '$1 == 503 { print $2 * 1000 }' "$WORK/s5_samples" >"$WORK/s5_503_ms"
    awk '$1 == 200 { print $2 * 1000 }' "$WORK/s5_samples" >"$WORK/s5_200_ms"
    local ok shed shed_ra other total peak upstream_ok capacity
    ok="$(count s5 ok)"
    shed="$(count s5 s503)"
    shed_ra="$(count s5 s503_retry_after)"
    other=$(($(count s5 other) + $(count s5 stale)))
    total=$((ok + shed + other))
    peak="$(sim_stat .peakConcurrency)"
    upstream_ok="$(sim_stat .calls.device_details)"
    capacity=$((S5_MAX_CONCURRENCY * S5_SECONDS / 2))
    read -r p50_503 p99_503 max_503 < <(percentiles "$WORK/s5_503_ms")
    read -r p50_200 p99_200 max_200 < <(percentiles "$WORK/s5_200_ms")
    figure $S clients "$S5_CLIENTS"
    figure $S seconds "$elapsed"
    figure $S requests "$total"
    figure $S answered_200 "$ok"
    figure $S answered_503 "$shed"
    figure $S answered_503_with_retry_after "$shed_ra"
    figure $S answered_other "$other"
    figure $S share_503 "$(awk -v a="$shed" -v b="$total" 'BEGIN { printf "%.3f", b ? a / b : 0 }')"
    figure $S socket_errors "$(wrk_socket_errors s5)"
    figure $S latency_all_p50 "$(wrk_latency s5 50)"
    figure $S latency_all_p99 "$(wrk_latency s5 99)"
    figure $S latency_503_ms_p50_p99_max "$p50_503 $p99_503 $max_503 ($(wc -l <"$WORK/s5_503_ms") samples)"
    figure $S latency_200_ms_p50_p99_max "$p50_200 $p99_200 $max_200 ($(wc -l <"$WORK/s5_200_ms") samples)"
    figure $S upstream_details_calls "$upstream_ok"
    figure $S upstream_capacity "$capacity"
    figure $S upstream_peak_concurrency "$peak"
    figure $S upstream_max_concurrency "$S5_MAX_CONCURRENCY"
    figure $S gateway_rss_kib_before "$rss0"
    figure $S gateway_rss_kib_max_sampled "$(awk '$1 > m { m = $1 } END { print m }' "$WORK/s5_proc")"
    figure $S gateway_vmhwm_kib "$(proc_kib "$GW_PID" VmHWM)"
    figure $S gateway_fds_before "$fds0"
    figure $S gateway_fds_max "$(awk '$2 > m { m = $2 } END { print m }' "$WORK/s5_proc")"
    figure $S gateway_sockets_max "$(awk '$3 > m { m = $3 } END { print m }' "$WORK/s5_proc")"
    figure $S shed_metric "$(curl -fsS "$GW/metrics" | grep '^devicegraph_upstream_shed_total' | tr '\n' ' ')"
    ((peak <= S5_MAX_CONCURRENCY)) && check s5.peak_concurrency PASS "$peak <= $S5_MAX_CONCURRENCY" ||
        check s5.peak_concurrency FAIL "$peak > $S5_MAX_CONCURRENCY"
    ((shed > 0)) && check s5.sheds PASS "$shed answered 503" || check s5.sheds FAIL "nothing shed"
    [[ "$shed_ra" == "$shed" ]] && check s5.retry_after PASS "$shed_ra/$shed" ||
        check s5.retry_after FAIL "$shed_ra/$shed with Retry-After"
    kill "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
}

binaries
start_sim 1000000
case "${1:-all}" in
1) scenario_1 ;;
5) scenario_5 ;;
all)
    scenario_1
    scenario_5
    ;;
*) die "usage: run.sh [1|5]" ;;
esac
exit "$FAILED"
