#!/usr/bin/env python3
"""Two devicegraph builds side by side, same simulator, same run: warm-path speed
(wrk) and upstream economy (calls counted at the simulator).

    python3 benches/compare/compare.py --base BIN [--new BIN] [--sim BIN]
        [--slices N] [--seconds S] [--connections C]

Both gateways run in thingspace mode against one `devicegraph-sim` on loopback. For
each gateway in turn (simulator counters reset before each):

- economy: a cold 50-card dashboard (details, upgrade history, last 5 check-ins per
  card), a cold 1,000-IMEI `devices` batch, and a cold walk of a 2,000-device
  campaign report in pages of 500: upstream calls per endpoint;
- warm: the same operations again must make 0 upstream calls.

Then wrk drives each warm operation against both gateways, alternating in `--slices`
slices of `--seconds` each, in ABBA order (so the machine's drifting load weighs on
both alike),
and prints requests/s, p50 and p99 (the mean of the slices' figures) and the
new/base ratio. Needs wrk (Debian package `wrk`) and Python 3.11 (stdlib only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "0000123456-00001"
SIM_CREDS = {
    "DEVICEGRAPH_UPSTREAM__CLIENT_ID": "sim-client",
    "DEVICEGRAPH_UPSTREAM__CLIENT_SECRET": "sim-secret",
    "DEVICEGRAPH_UPSTREAM__USERNAME": "sim-user",
    "DEVICEGRAPH_UPSTREAM__PASSWORD": "sim-password",
}
# The admin key of both gateways (the miss-path case invalidates through it).
ADMIN_KEY = "bench-admin-key"
ADMIN_KEY_SHA256 = hashlib.sha256(ADMIN_KEY.encode()).hexdigest()
# The dashboard's 50 IMEIs (set by `operations`).
DASHBOARD_IMEIS: list[str] = []
CARD = ("imei make model firmware status lastConnectionTime "
        "upgradeHistory { campaignId status startDate } "
        "checkIns(last: 5) { result timeCompleted }")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEVICEGRAPH_")}


def http(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read()
    return json.loads(text) if text else {}


def wait_for(check, what: str, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


class Sim:
    def __init__(self, binary: str, workdir: Path):
        self.log = workdir / "sim.log"
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--devices", "10000"],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env=clean_env())

        def banner():
            for line in self.log.read_text(errors="replace").splitlines():
                if "base URL http://" in line:
                    return line.split("base URL ", 1)[1].strip()
            return None

        self.base_url = wait_for(banner, "the simulator's base URL")
        self.root = self.base_url.rsplit("/api", 1)[0]

    def reset(self):
        http(f"{self.root}/_sim/reset", {})

    def calls(self) -> dict:
        return {k: v for k, v in http(f"{self.root}/_sim/stats")["calls"].items() if v}


class Gateway:
    def __init__(self, label: str, binary: str, sim: Sim, workdir: Path):
        self.label = label
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        config = workdir / f"{label}.toml"
        config.write_text(f"""
[server]
listen = "127.0.0.1:{self.port}"

[upstream]
mode = "thingspace"
base_url = "{sim.base_url}"
# The gateway's own scheduling, not ThingSpace's budget (50/s by default), is measured.
rate_per_second = 10000
burst = 10000

[limits]
# The bench measures the gateway, not its inbound rate limit.
per_client_rps = 1000000
per_client_burst = 1000000
upstream_calls_per_minute = 1000000

[auth]
# The miss-path case invalidates a device through the admin route before each request.
admin_key_sha256 = "{ADMIN_KEY_SHA256}"

[log]
level = "warn"
""")
        env = clean_env()
        env.update(SIM_CREDS)
        self.log = workdir / f"{label}.log"
        self.proc = subprocess.Popen([binary, "--config", str(config), "serve"],
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     env=env)
        wait_for(lambda: http(f"http://127.0.0.1:{self.port}/healthz") is not None,
                 f"{label} /healthz")

    def query(self, query: str, variables: dict | None = None) -> dict:
        answer = http(self.url, {"query": query, "variables": variables or {}})
        if answer.get("errors"):
            raise RuntimeError(f"{self.label}: {answer['errors'][:2]}")
        return answer["data"]


def stop(proc: subprocess.Popen):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def operations(gw: Gateway, campaign: str) -> dict:
    """The measured operations, as (query, variables), built from the simulator's data."""
    page = gw.query(
        f'{{ campaign(account: "{ACCOUNT}", id: "{campaign}") '
        f'{{ devices(first: 1000) {{ edges {{ node {{ imei }} }} }} }} }}')
    imeis = [e["node"]["imei"] for e in page["campaign"]["devices"]["edges"]]
    cards = " ".join(f'd{i}: device(account: "{ACCOUNT}", imei: "{imei}") {{ {CARD} }}'
                     for i, imei in enumerate(imeis[500:550]))
    global DASHBOARD_IMEIS
    DASHBOARD_IMEIS = imeis[500:550]
    return {
        "card": (f'{{ device(account: "{ACCOUNT}", imei: "{imeis[1]}") {{ {CARD} }} }}', {}),
        "dashboard50": (f"{{ {cards} }}", {}),
        "devices500": ('query($imeis: [IMEI!]!) { devices(account: "' + ACCOUNT +
                       '", imeis: $imeis) { imei make model firmware status '
                       'lastConnectionTime } }', {"imeis": imeis[:500]}),
    }


class Bare:
    """examples/bare_server answering `body` bytes to every POST /graphql."""

    def __init__(self, binary: str, body: bytes, workdir: Path):
        path = workdir / "bare-body.json"
        path.write_bytes(body)
        self.log = workdir / "bare.log"
        self.proc = subprocess.Popen([binary, str(path)], stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT)

        def address():
            for line in self.log.read_text(errors="replace").splitlines():
                if line.startswith("listening on "):
                    return line.split("listening on ", 1)[1].strip()
            return None

        self.label = "bare"
        self.url = f"http://{wait_for(address, 'the bare server')}/graphql"


def answer_bytes(gw: Gateway, body: dict) -> bytes:
    req = urllib.request.Request(gw.url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def etag_of(gw: Gateway, body: dict) -> str | None:
    req = urllib.request.Request(gw.url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.headers.get("etag")


def economy(sim: Sim, gw: Gateway, campaign: str, ops: dict, batch: list[str]) -> dict:
    """Upstream calls of cold operations, then of the same operations warm."""
    out = {}
    cold_ops = {
        "dashboard50": ops["dashboard50"],
        "devices1000": ('query($imeis: [IMEI!]!) { devices(account: "' + ACCOUNT +
                        '", imeis: $imeis) { imei firmware } }', {"imeis": batch}),
    }
    for name, (query, variables) in cold_ops.items():
        for phase in ("cold", "warm"):
            sim.reset()
            gw.query(query, variables)
            out[f"{name} {phase}"] = sim.calls()
    for phase in ("cold", "warm"):
        sim.reset()
        after, pages = None, 0
        while pages < 4:
            arg = f', after: "{after}"' if after else ""
            data = gw.query(f'{{ campaign(account: "{ACCOUNT}", id: "{campaign}") '
                            f'{{ devices(first: 500{arg}) {{ pageInfo {{ endCursor hasNextPage }} '
                            f'edges {{ node {{ imei status }} }} }} }} }}')
            info = data["campaign"]["devices"]["pageInfo"]
            pages += 1
            if not info["hasNextPage"]:
                break
            after = info["endCursor"]
        out[f"campaign 4x500 {phase}"] = sim.calls()
    return out


def cold_dashboards(sim: Sim, gw: Gateway, imeis: list[str], rounds: int) -> dict:
    """`rounds` 50-card dashboards over IMEIs nobody read yet, the simulator answering
    every call after 50 ms: median latency and upstream calls per dashboard."""
    latencies, calls = [], []
    try:
        for r in range(rounds):
            chunk = imeis[r * 50:(r + 1) * 50]
            cards = " ".join(f'd{i}: device(account: "{ACCOUNT}", imei: "{imei}") {{ {CARD} }}'
                             for i, imei in enumerate(chunk))
            sim.reset()  # (also clears faults)
            http(f"{sim.root}/_sim/faults", {"latencyMs": 50})
            started = time.monotonic()
            gw.query(f"{{ {cards} }}")
            latencies.append((time.monotonic() - started) * 1000)
            round_calls = sim.calls()
            calls.append(sum(round_calls.values()))
            if calls[-1] == max(calls):
                by_endpoint = round_calls
    finally:
        http(f"{sim.root}/_sim/faults", {"clear": True})
    return {"p50_ms": statistics.median(latencies), "calls": statistics.median(calls),
            "last": by_endpoint}  # the breakdown of the round with the most calls


def wrk(url: str, body: dict, seconds: int, connections: int, workdir: Path,
        etag: str | None = None) -> dict:
    script = workdir / "post.lua"
    payload = json.dumps(body).replace("\\", "\\\\").replace("'", "\\'")
    conditional = f'wrk.headers["If-None-Match"] = {json.dumps(etag)}\n' if etag else ""
    script.write_text(f"""wrk.method = "POST"
wrk.body = '{payload}'
wrk.headers["Content-Type"] = "application/json"
{conditional}""")
    threads = min(2, connections)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout

    def ms(label):
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50": ms("50%"), "p99": ms("99%"),
            "non2xx": int(errors.group(1)) if errors else 0}


def wrk_invalidating(url: str, body: dict, imeis: list[str], seconds: int, connections: int,
                     workdir: Path) -> dict:
    """Case 4, the miss path: each wrk thread alternates an admin invalidation of one
    of the dashboard's devices (the next in turn) with the dashboard itself, so every
    dashboard request finds one device's entries gone and its stored answer no longer
    current. Requests/s counts dashboards only (half of what wrk sent)."""
    script = workdir / "invalidate.lua"
    payload = json.dumps(body).replace("\\", "\\\\").replace("'", "\\'")
    invalidations = ", ".join(
        "'" + json.dumps({"account": ACCOUNT, "imei": imei}) + "'" for imei in imeis)
    script.write_text(f"""local query = '{payload}'
local invalidations = {{ {invalidations} }}
local n = 0
request = function()
  n = n + 1
  if n % 2 == 1 then
    local body = invalidations[((n - 1) / 2) % #invalidations + 1]
    return wrk.format("POST", "/admin/cache/invalidate",
      {{ ["Content-Type"] = "application/json", ["X-API-Key"] = "{ADMIN_KEY}" }}, body)
  end
  return wrk.format("POST", "/graphql", {{ ["Content-Type"] = "application/json" }}, query)
end
""")
    threads = min(2, connections)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(rps.group(1)) / 2 if rps else 0.0,
            "non2xx": int(errors.group(1)) if errors else 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", required=True, help="the baseline devicegraph binary")
    ap.add_argument("--new", default=str(ROOT / "target/release/devicegraph"))
    ap.add_argument("--sim", default=str(ROOT / "target/release/devicegraph-sim"))
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--bare", help="examples/bare_server binary: the same bytes from a bare "
                    "axum handler, run in the same rotation (the ceiling of this stack)")
    ap.add_argument("--only", help="run only this warm operation (card, dashboard50, devices500)")
    ap.add_argument("--skip-economy", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (Debian package `wrk`)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="devicegraph-compare-"))
    sim = Sim(args.sim, workdir)
    gateways = []
    try:
        gateways = [Gateway("base", args.base, sim, workdir), Gateway("new", args.new, sim, workdir)]
        catalog = http(f"{sim.root}/_sim/catalog")
        by_size = sorted((c for c in catalog["campaigns"] if c["account"] == ACCOUNT),
                         key=lambda c: -c.get("devices", 0))
        campaign, walked = by_size[0]["id"], by_size[1]["id"]
        # The same preparation on both (tokens, the campaign's first pages cached).
        ops = [operations(g, campaign) for g in gateways][0]
        # A 1,000-IMEI batch (the most one operation may name) whose details nobody
        # has read yet: the campaign's second thousand devices.
        first = gateways[1].query(
            f'{{ campaign(account: "{ACCOUNT}", id: "{campaign}") '
            f'{{ devices(first: 1000) {{ pageInfo {{ endCursor }} }} }} }}')
        cursor = first["campaign"]["devices"]["pageInfo"]["endCursor"]
        for g in gateways:
            second = g.query(
            f'{{ campaign(account: "{ACCOUNT}", id: "{campaign}") '
                f'{{ devices(first: 1000, after: "{cursor}") {{ edges {{ node {{ imei }} }} }} }} }}')
        batch = [e["node"]["imei"] for e in second["campaign"]["devices"]["edges"]]
        if args.skip_economy:
            economy_ops = {}
        else:
            economy_ops = ops
        print("# upstream economy (calls at the simulator; warm must be 0)\n")
        print("| operation | " + " | ".join(g.label for g in gateways) + " |")
        print("| --- | " + " | ".join("---" for _ in gateways) + " |")
        rows = {}
        for g in gateways if economy_ops else []:
            for name, calls in economy(sim, g, walked, ops, batch).items():
                rows.setdefault(name, {})[g.label] = calls
        for name, by in rows.items():
            cells = [f"{sum(by[g.label].values())} {by[g.label]}" for g in gateways]
            print(f"| {name} | " + " | ".join(cells) + " |")

        # Cold dashboards: fresh IMEIs (the campaign's devices after the first 2,000)
        # for every dashboard and gateway.
        rounds = 5
        page = gateways[0].query(
            f'{{ campaign(account: "{ACCOUNT}", id: "{campaign}") '
            f'{{ devices(first: 1000, after: "{cursor}") {{ pageInfo {{ endCursor }} }} }} }}')
        third = gateways[0].query(
            f'{{ campaign(account: "{ACCOUNT}", id: "{campaign}") {{ devices(first: 1000, '
            f'after: "{page["campaign"]["devices"]["pageInfo"]["endCursor"]}") '
            f'{{ edges {{ node {{ imei }} }} }} }} }}')
        fresh = [e["node"]["imei"] for e in third["campaign"]["devices"]["edges"]]
        print(f"\n# cold 50-card dashboard, upstream at 50 ms, fresh IMEIs ({rounds} each)\n")
        print("| gateway | median latency ms | upstream calls per dashboard |")
        print("| --- | ---: | ---: |")
        for i, g in enumerate(gateways):
            own = fresh[i * 50 * rounds:(i + 1) * 50 * rounds]
            if len(own) < 50 * rounds:
                print(f"| {g.label} | (not enough fresh devices: {len(own)}) | |")
                continue
            cold = cold_dashboards(sim, g, own, rounds)
            print(f"| {g.label} | {cold['p50_ms']:.0f} | {cold['calls']:.0f} {cold['last']} |")

        print(f"\n# warm path (wrk, {args.connections} connections, {args.slices} x "
              f"{args.seconds}s slices per gateway, alternating)\n")
        print("| operation | gateway | req/s | p50 ms | p99 ms | non-2xx |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        conditional = {f"{name} If-None-Match": op for name, op in ops.items() if name != "devices500"}
        for name, (query, variables) in {**ops, **conditional}.items():
            if args.only and not name.startswith(args.only):
                continue
            body = {"query": query, "variables": variables}
            etags = {}
            for g in gateways:  # warm both; a conditional case sends the answer's tag
                g.query(query, variables)
                if name.endswith("If-None-Match"):
                    tag = etag_of(g, body)
                    if tag:  # a gateway without tags answers 200 every time
                        etags[g.label] = tag
            targets = list(gateways)
            bare = None
            if args.bare and not name.endswith("If-None-Match"):
                bare = Bare(args.bare, answer_bytes(gateways[-1], body), workdir)
                targets.append(bare)
            sim.reset()
            runs = {t.label: [] for t in targets}
            try:
                for i in range(args.slices):
                    # ABBA order: none always runs first (or right after another).
                    for t in (targets if i % 2 == 0 else targets[::-1]):
                        runs[t.label].append(wrk(t.url, body, args.seconds, args.connections,
                                                 workdir, etags.get(t.label)))
            finally:
                if bare:
                    stop(bare.proc)
            upstream = sum(sim.calls().values())
            figures = {}
            for g in gateways:
                r = runs[g.label]
                figures[g.label] = {k: statistics.mean(x[k] for x in r) for k in ("rps", "p50", "p99")}
                f = figures[g.label]
                print(f"| {name} | {g.label} | {f['rps']:.0f} | {f['p50']:.2f} | {f['p99']:.2f} | "
                      f"{sum(x['non2xx'] for x in r)} |")
            # (wrk counts only statuses >= 400 here, so 304s are not in this column.)
            if bare:
                r = runs["bare"]
                figures["bare"] = {k: statistics.mean(x[k] for x in r) for k in ("rps", "p50", "p99")}
                f = figures["bare"]
                print(f"| {name} | bare axum, same bytes | {f['rps']:.0f} | {f['p50']:.2f} | "
                      f"{f['p99']:.2f} | |")
                print(f"| {name} | new/bare | {figures['new']['rps'] / f['rps']:.2f}x | | | |")
            ratio = figures["new"]["rps"] / figures["base"]["rps"] if figures["base"]["rps"] else float("nan")
            # Calls while warm are stale-while-revalidate refreshes of entries whose TTL
            # ran out during the run (check-ins: 60 s), both gateways together.
            print(f"| {name} | new/base | {ratio:.2f}x | | | upstream refreshes during the run: {upstream} |")
        if not args.only or "dashboard50 miss".startswith(args.only):
            miss_path(args, sim, gateways, ops["dashboard50"], workdir)
    finally:
        for g in gateways:
            stop(g.proc)
        stop(sim.proc)
    return 0


def miss_path(args, sim: Sim, gateways: list, op: tuple, workdir: Path):
    """Case 4: the 50-card dashboard with one of its devices invalidated before every
    request, so the response cache cannot answer: the miss path, upstream refetch of
    that device included (the simulator answers at once)."""
    query, variables = op
    body = {"query": query, "variables": variables}
    print(f"\n# miss path: 50-card dashboard, one device invalidated before each request "
          f"({args.connections} connections, {args.slices} x {args.seconds}s)\n")
    print("| gateway | dashboards/s | non-2xx | upstream calls per dashboard |")
    print("| --- | ---: | ---: | ---: |")
    runs = {g.label: [] for g in gateways}
    calls = {g.label: 0 for g in gateways}
    for i in range(args.slices):
        for g in (gateways if i % 2 == 0 else gateways[::-1]):
            g.query(query, variables)
            sim.reset()
            runs[g.label].append(wrk_invalidating(g.url.rsplit("/graphql", 1)[0], body,
                                                  DASHBOARD_IMEIS, args.seconds,
                                                  args.connections, workdir))
            calls[g.label] += sum(sim.calls().values())
    figures = {}
    for g in gateways:
        r = runs[g.label]
        figures[g.label] = statistics.mean(x["rps"] for x in r)
        dashboards = sum(x["rps"] for x in r) * args.seconds
        per = calls[g.label] / dashboards if dashboards else float("nan")
        print(f"| {g.label} | {figures[g.label]:.0f} | {sum(x['non2xx'] for x in r)} | {per:.2f} |")
    if figures.get("base"):
        print(f"| new/base | {figures['new'] / figures['base']:.2f}x | | |")


if __name__ == "__main__":
    sys.exit(main())
