#!/usr/bin/env bash
# Soak (RESILIENCE.md, scenario 8): mixed dashboard traffic (GraphQL dashboard
# queries and REST reads, rotated by wrk) over a 1,000,000-device simulator, with a
# fault switched on every other window: ThingSpace down (errorRate 1.0), half
# failing (0.5), slow (2 s), 429s, tokens expired every few seconds, dropped
# connections. The gateway's RSS is sampled every 5 s.
#
#   bash benches/resilience/soak.sh DURATION_SECONDS [WINDOW_SECONDS]
#   bash benches/resilience/soak.sh 1800          # the 30-minute soak, 1-minute windows
#   bash benches/resilience/soak.sh 180 15        # what CI runs
#
# Passes (exit 0) when
#   - RSS in the second half stays within 5% of its value at the half-way mark,
#     both read as medians: the median of the samples of the last quarter against
#     the median of the samples of the second quarter (the run up to the mark).
#     Single 5-s samples move about 10% either way with the allocator's churn on a
#     settled working set (measured), so one sample is no reference, and a leak is
#     a trend, which medians show; the largest sample is printed too. A fall is not
#     a failure.
#   - no request failed outside the fault windows: an answer other than HTTP 200, a
#     GraphQL answer with `errors`, or a socket error/timeout counts as a failure.
#     The first SOAK_SETTLE seconds (default 10) of a clean window right after a
#     fault are reported apart and not counted: that is the fault's own tail (a
#     circuit's open period, a Retry-After pause, answers already in flight).
# Before the first window one pass over every request warms the caches (not
# measured: RSS sampling starts after it), so the RSS compared is that of a
# working set that no longer grows by design.
# Knobs: SOAK_SETTLE, SOAK_DEVICES (500, the devices the traffic rotates over),
# SOAK_CONNECTIONS (8), SOAK_PAUSE_MS (5, per connection between requests),
# DEVICEGRAPH_BIN_DIR (prebuilt binaries; see lib.sh).
source "$(dirname "$0")/lib.sh"
HERE="$ROOT/benches/resilience"
ACCOUNT="0000123456-00001"

DURATION="${1:-}"
WINDOW="${2:-60}"
[[ "$DURATION" =~ ^[0-9]+$ && "$WINDOW" =~ ^[0-9]+$ ]] ||
    die "usage: soak.sh DURATION_SECONDS [WINDOW_SECONDS]"
SETTLE="${SOAK_SETTLE:-10}"
CONNECTIONS="${SOAK_CONNECTIONS:-8}"
DEVICES="${SOAK_DEVICES:-500}"
PAUSE_MS="${SOAK_PAUSE_MS:-5}"
((WINDOW > SETTLE)) || die "the window ($WINDOW s) must be longer than SOAK_SETTLE ($SETTLE s)"
((DURATION >= 2 * WINDOW)) || die "DURATION must hold at least two windows"
need wrk "Debian package wrk"
need curl
need jq
need python3

FAULT_NAMES=(down half_failing slow rate_limited tokens_expired dropped)
fault_on() {
    case "$1" in
    down) sim_faults '{"clear": true, "errorRate": 1.0}' ;;
    half_failing) sim_faults '{"clear": true, "errorRate": 0.5}' ;;
    slow) sim_faults '{"clear": true, "latencyMs": 2000}' ;;
    rate_limited) sim_faults '{"clear": true, "rateLimitRate": 0.5, "retryAfterSecs": 2}' ;;
    tokens_expired) sim_faults '{"clear": true}' ;; # expired by expire_loop
    dropped) sim_faults '{"clear": true, "dropRate": 0.3}' ;;
    esac
}

expire_loop() {
    while true; do
        sleep 3
        sim_faults '{"expireTokens": true}' || true
    done
}

# The requests wrk rotates over, as a Lua table: for each of SOAK_DEVICES devices a REST
# read and a GraphQL device card with its histories, a 10-device batch every 20
# devices and a campaign dashboard page every 50.
write_requests() {
    local campaign=$1 keys=$2 out=$3
    python3 - "$ACCOUNT" "$campaign" "$keys" "$PAUSE_MS" "$WORK/reqs.json" >"$out" <<'PY'
import json, sys
account, campaign, keys, pause = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
imeis = [l.strip() for l in open(keys) if l.strip()]
def gql(query, variables):
    return json.dumps({"query": query, "variables": variables})
card = ("query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) { imei make model firmware "
        "lastConnectionTime lastCheckIn { result timeCompleted } upgradeHistory { firmwareTo status } "
        "freshness { details { fetchedAt stale } } } }")
batch = "query($a: String!, $is: [IMEI!]!) { devices(account: $a, imeis: $is) { imei firmware status } }"
dashboard = ("query($a: String!, $c: ID!) { campaign(account: $a, id: $c) { totalDevices "
             "devices(first: 50) { freshness { fetchedAt stale } edges { node { imei status "
             "device { firmware lastConnectionTime } } } } } }")
reqs = []
for i, imei in enumerate(imeis):
    reqs.append(("GET", f"/v1/accounts/{account}/devices/{imei}", None))
    reqs.append(("POST", "/graphql", gql(card, {"a": account, "i": imei})))
    if i % 20 == 0:
        reqs.append(("POST", "/graphql", gql(batch, {"a": account, "is": imeis[i:i + 10]})))
    if i % 50 == 0:
        reqs.append(("POST", "/graphql", gql(dashboard, {"a": account, "c": campaign})))
print(f"pause_ms = {pause}")
print("reqs = {")
for method, path, body in reqs:
    b = "nil" if body is None else "[==[" + body + "]==]"
    print(f'  {{ "{method}", "{path}", {b} }},')
print("}")
json.dump(reqs, open(sys.argv[5], "w"))
PY
    cat "$HERE/soak.lua" >>"$out"
}

# warm_up: one pass over every request, 8 at a time (wrk cannot stop after a
# number of requests).
warm_up() {
    local start=$SECONDS
    python3 - "$GW" "$WORK/reqs.json" <<'PY' >&2
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
gw, reqs = sys.argv[1], json.load(open(sys.argv[2]))
def send(r):
    method, path, body = r
    req = urllib.request.Request(gw + path, data=body.encode() if body else None, method=method,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as answer:
            return answer.status == 200
    except OSError:
        return False
with ThreadPoolExecutor(8) as pool:
    ok = sum(pool.map(send, reqs))
print(f"warm-up: {ok} of {len(reqs)} requests answered 200")
PY
    log "warm-up took $((SECONDS - start)) s"
}

# run_wrk SECONDS NAME: one wrk run; prints its counts line.
run_wrk() {
    wrk -t 2 -c "$CONNECTIONS" -d "${1}s" --timeout 30s -s "$WORK/soak_full.lua" "$GW" \
        >"$WORK/$2.out" 2>&1 || true
    grep '^counts ' "$WORK/$2.out" || echo "counts good=0 stale=0 bad_status=0 gql_errors=0 socket_errors=1"
}

failures_of() { # the failures of a counts line
    local line=$1
    awk '{ n = 0; for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] != "good" && kv[1] != "stale") n += kv[2] } print n }' <<<"$line"
}
requests_of() {
    awk '{ n = 0; for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] != "stale") n += kv[2] } print n }' <<<"$1"
}

binaries
start_sim 1000000
start_gateway ''
account_imeis "$ACCOUNT" "$DEVICES" "$WORK/keys"
CAMPAIGN="$(curl -fsS "$SIM_ROOT/_sim/catalog" | jq -r --arg a "$ACCOUNT" \
    '[.campaigns[] | select(.account == $a)] | max_by(.devices) | .id')"
write_requests "$CAMPAIGN" "$WORK/keys" "$WORK/soak_full.lua"
warm_up
sim_reset

# RSS every 5 s, with the seconds since the start.
START=$SECONDS
(
    while kill -0 "$GW_PID" 2>/dev/null; do
        printf '%s %s\n' "$((SECONDS - START))" "$(proc_kib "$GW_PID" VmRSS)"
        sleep 5
    done
) >"$WORK/rss" &
SAMPLER=$!
PIDS+=("$SAMPLER")

WINDOWS=$((DURATION / WINDOW))
OUTSIDE_REQUESTS=0
OUTSIDE_FAILURES=0
SETTLE_FAILURES=0
fault_index=0
for ((w = 0; w < WINDOWS; w++)); do
    if ((w % 2 == 1)); then
        name="${FAULT_NAMES[$((fault_index % ${#FAULT_NAMES[@]}))]}"
        fault_index=$((fault_index + 1))
        fault_on "$name"
        expirer=""
        if [[ "$name" == tokens_expired ]]; then
            expire_loop &
            expirer=$!
        fi
        line="$(run_wrk "$WINDOW" "w$w")"
        [[ -n "$expirer" ]] && { kill "$expirer" 2>/dev/null || true; wait "$expirer" 2>/dev/null || true; }
        sim_faults '{"clear": true}'
        printf 'window %2d fault:%-15s %s\n' "$w" "$name" "$line"
        figure s8 "fault.$name.failures" "$(failures_of "$line")/$(requests_of "$line")"
    else
        settle_line=""
        if ((w > 0)); then
            settle_line="$(run_wrk "$SETTLE" "w${w}s")"
            SETTLE_FAILURES=$((SETTLE_FAILURES + $(failures_of "$settle_line")))
            line="$(run_wrk "$((WINDOW - SETTLE))" "w$w")"
        else
            line="$(run_wrk "$WINDOW" "w$w")"
        fi
        printf 'window %2d clean %-21s %s%s\n' "$w" "" "$line" "${settle_line:+ (settle: ${settle_line#counts })}"
        OUTSIDE_REQUESTS=$((OUTSIDE_REQUESTS + $(requests_of "$line")))
        OUTSIDE_FAILURES=$((OUTSIDE_FAILURES + $(failures_of "$line")))
    fi
done
sleep 5 # one more RSS sample after the last window
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true

HALF=$(((SECONDS - START) / 2))
# median FROM TO: the median RSS of the samples taken in [FROM, TO] seconds.
median() {
    awk -v from="$1" -v to="$2" '$1 >= from && $1 <= to { print $2 }' "$WORK/rss" |
        sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else print v[int((NR + 1) / 2)] }'
}
END_AT=$((SECONDS - START))
RSS_HALF="$(median "$((HALF / 2))" "$HALF")"
RSS_END="$(median "$((HALF + HALF / 2))" "$END_AT")"
read -r RSS_MAX RSS_MIN < <(awk -v half="$HALF" '
    $1 > half { if ($2 > max) max = $2; if (min == "" || $2 < min) min = $2 }
    END { print max + 0, min + 0 }' "$WORK/rss")

figure s8 duration_seconds "$((SECONDS - START))"
figure s8 windows "$WINDOWS of ${WINDOW}s"
figure s8 rss_kib_median_to_half "$RSS_HALF"
figure s8 rss_kib_median_last_quarter "$RSS_END"
figure s8 rss_kib_max_second_half "$RSS_MAX"
figure s8 rss_kib_min_second_half "$RSS_MIN"
figure s8 rss_samples "$(wc -l <"$WORK/rss")"
figure s8 rss_growth_second_half "$(awk -v a="$RSS_END" -v b="$RSS_HALF" 'BEGIN { printf "%.3f", a / b }')"
figure s8 requests_outside_faults "$OUTSIDE_REQUESTS"
figure s8 failures_outside_faults "$OUTSIDE_FAILURES"
figure s8 failures_in_settle "$SETTLE_FAILURES"
figure s8 gateway_vmhwm_kib "$(proc_kib "$GW_PID" VmHWM)"
figure s8 upstream_calls "$(sim_stat .totalCalls)"

STATUS=0
if awk -v a="$RSS_END" -v b="$RSS_HALF" 'BEGIN { exit !(a <= b * 1.05) }'; then
    echo "check: s8.rss_stable PASS (median $RSS_END <= 1.05 x $RSS_HALF KiB)"
else
    echo "check: s8.rss_stable FAIL (median $RSS_END > 1.05 x $RSS_HALF KiB)"
    STATUS=1
fi
if ((OUTSIDE_FAILURES == 0 && OUTSIDE_REQUESTS > 0)); then
    echo "check: s8.no_errors_outside_faults PASS (0 of $OUTSIDE_REQUESTS)"
else
    echo "check: s8.no_errors_outside_faults FAIL ($OUTSIDE_FAILURES of $OUTSIDE_REQUESTS)"
    STATUS=1
fi
exit "$STATUS"
