#!/usr/bin/env python3
"""devicegraph against a peer gateway, same simulator, same run (issue 9, case 6).

    python3 benches/peer/peer.py [--devicegraph BIN] [--sim BIN] [--seconds S]
        [--slices N] [--connections C] [--rounds R] [--peer-fork N]

(`bash benches/peer/run.sh` installs the peer with `npm ci` first, then runs this.)

The peer is Hive Gateway serving a supergraph that GraphQL Mesh compose builds from
benches/peer/thingspace.openapi.json, with its response cache on (in memory, 5 min),
the ThingSpace tokens passed as static operation headers. One `devicegraph-sim`
serves both gateways; devicegraph runs in thingspace mode as in benches/compare.

- checks: both answer the card and the dashboard without errors and with the same
  device facts; warm, neither makes an upstream call (the peer's response cache works);
- case 1, one merged device card, and case 2, a 50-card dashboard in one operation:
  wrk (32 connections) alternates the two gateways in ABBA slices; requests/s, p50,
  p99 (means over slices), upstream calls during the slices, and each gateway's peak
  RSS (VmHWM, summed over the peer's process tree) after the case;
- case 5: a cold 50-card dashboard with the simulator answering after 50 ms, fresh
  IMEIs every round: median latency and upstream calls per dashboard.

The processes and wrk come from benches/compare/compare.py (imported, not copied).
Needs wrk, Node 20+ and Python 3.11 (stdlib only).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "benches" / "compare"))
import compare as cmp  # noqa: E402  (Sim, Gateway, wrk, cold_dashboards, ...)

ACCOUNT = cmp.ACCOUNT
CHECK_INS = 5  # devicegraph's card asks checkIns(last: 5)
CARD_RE = re.compile(r'(\w+): device\(account: "([^"]+)", imei: "(\d+)"\)')


def devicegraph_cards(imeis: list[str]) -> str:
    """A devicegraph operation of one card per IMEI (aliases d0, d1, ...)."""
    return "{ " + " ".join(
        f'd{i}: device(account: "{ACCOUNT}", imei: "{imei}") {{ {cmp.CARD} }}'
        for i, imei in enumerate(imeis)) + " }"


def peer_cards(cards: list[tuple[str, str, str]]) -> str:
    """The peer's equivalent of devicegraph cards `(alias, account, imei)`: per card the
    device's details, its upgrade history and its last 5 check-ins, one operation."""
    parts = []
    for alias, account, imei in cards:
        parts.append(
            f'{alias}_details: deviceDetails(acc: "{account}", input: {{deviceList: ["{imei}"]}}) '
            f'{{ deviceList {{ deviceId make model firmware status lastConnectionTime }} }} '
            f'{alias}_upgrades: upgradeHistory(acc: "{account}", deviceId: "{imei}") '
            f'{{ campaignId id status startDate }} '
            f'{alias}_checkIns: lastCheckIns(acc: "{account}", deviceId: "{imei}", last: {CHECK_INS}) '
            f'{{ result timeCompleted }}')
    return "{ " + " ".join(parts) + " }"


def translate(devicegraph_query: str) -> str:
    """A devicegraph card operation (`alias: device(account, imei) { CARD }` ...) as the
    peer's operation, so one procedure (compare.cold_dashboards) measures both."""
    cards = CARD_RE.findall(devicegraph_query)
    if not cards:
        raise ValueError(f"not a card operation: {devicegraph_query[:80]}")
    return peer_cards(cards)


def same_card(card: dict, peer_data: dict, alias: str) -> bool:
    """Whether devicegraph's `card` and the peer's fields `alias_*` tell the same."""
    details = (peer_data[f"{alias}_details"]["deviceList"] or [{}])[0]
    upgrades = peer_data[f"{alias}_upgrades"] or []
    return (card["imei"] == details.get("deviceId")
            and all(card[k] == details.get(k) for k in ("make", "model", "firmware", "status"))
            and sorted((u["campaignId"], u["status"]) for u in card["upgradeHistory"])
            == sorted((u["campaignId"] or u["id"], u["status"]) for u in upgrades)
            and len(card["checkIns"]) == len(peer_data[f"{alias}_checkIns"] or []))


def login(base_url: str) -> tuple[str, str]:
    """The ThingSpace OAuth token and M2M session token, from the simulator."""
    creds = cmp.SIM_CREDS
    basic = base64.b64encode(f"{creds['DEVICEGRAPH_UPSTREAM__CLIENT_ID']}:"
                             f"{creds['DEVICEGRAPH_UPSTREAM__CLIENT_SECRET']}".encode()).decode()
    req = urllib.request.Request(
        f"{base_url}/ts/v1/oauth2/token", data=b"grant_type=client_credentials", method="POST",
        headers={"authorization": f"Basic {basic}",
                 "content-type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=30) as r:
        token = json.loads(r.read())
    bearer = token["access_token"]
    body = json.dumps({"username": creds["DEVICEGRAPH_UPSTREAM__USERNAME"],
                       "password": creds["DEVICEGRAPH_UPSTREAM__PASSWORD"]}).encode()
    req = urllib.request.Request(
        f"{base_url}/m2m/v1/session/login", data=body, method="POST",
        headers={"authorization": f"Bearer {bearer}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        session = json.loads(r.read())["sessionToken"]
    print(f"# logged in to the simulator: OAuth token valid {token['expires_in']} s "
          f"(the same token for devicegraph), session kept alive by use (20 min idle)")
    return bearer, session


def campaign_imeis(base_url: str, tokens: tuple[str, str], campaign: str, want: int) -> list[str]:
    """The first `want` IMEIs of a campaign, read straight from the simulator (so neither
    gateway has seen them)."""
    out, cursor = [], "0"
    while len(out) < want:
        q = urllib.parse.urlencode({"lastSeenDeviceId": cursor})
        req = urllib.request.Request(
            f"{base_url}/fota/v3/reports/{ACCOUNT}/campaigns/{campaign}/devices?{q}",
            headers={"authorization": f"Bearer {tokens[0]}", "vz-m2m-token": tokens[1]})
        with urllib.request.urlopen(req, timeout=60) as r:
            page = json.loads(r.read())
        out += [d["deviceId"] for d in page["deviceList"]]
        if not page["hasMoreData"]:
            break
        cursor = page["lastSeenDeviceId"]
    return out[:want]


def package_version(name: str) -> str:
    try:
        return json.loads((HERE / "node_modules" / name / "package.json").read_text())["version"]
    except OSError:
        return "?"


class Peer:
    """Hive Gateway over the composed supergraph, on loopback. `query` takes devicegraph
    card operations (see `translate`) or, with `raw=True`, the peer's own."""

    def __init__(self, node: str, sim: cmp.Sim, tokens: tuple[str, str], workdir: Path,
                 fork: int):
        self.label = "peer"
        env = cmp.clean_env()
        env.update({"TS_BASE_URL": sim.base_url, "TS_BEARER": tokens[0],
                    "TS_SESSION": tokens[1], "NODE_ENV": "production"})
        supergraph = workdir / "supergraph.graphql"
        compose = subprocess.run(
            [node, str(HERE / "node_modules/@graphql-mesh/compose-cli/esm/bin.js"),
             "-c", "mesh.config.ts", "-o", str(supergraph)],
            cwd=HERE, env=env, capture_output=True, text=True)
        if compose.returncode != 0 or not supergraph.exists():
            raise RuntimeError(f"mesh-compose failed:\n{compose.stdout}\n{compose.stderr}")
        self.port = cmp.free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.log = workdir / "peer.log"
        self.proc = subprocess.Popen(
            [node, str(HERE / "node_modules/@graphql-hive/gateway/dist/bin.js"), "supergraph",
             str(supergraph), "-c", "gateway.config.ts", "--host", "127.0.0.1",
             "--port", str(self.port), "--fork", str(fork)],
            cwd=HERE, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the peer exited:\n{self.log.read_text(errors='replace')}")
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readiness",
                                        timeout=5) as r:
                return r.status == 200

        cmp.wait_for(ready, "the peer's /readiness", 120)

    def query(self, query: str, variables: dict | None = None, raw: bool = False) -> dict:
        text = query if raw else translate(query)
        answer = cmp.http(self.url, {"query": text, "variables": variables or {}})
        if answer.get("errors"):
            raise RuntimeError(f"peer: {answer['errors'][:2]}")
        return answer["data"]


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant (the peer's workers, if it forks any)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def memory_kib(pid: int, field: str) -> int:
    """`field` (VmHWM, VmRSS) of `pid`'s process tree, KiB, summed (for several
    processes the sum of each one's peak bounds their joint peak from above)."""
    total = 0
    for p in process_tree(pid):
        try:
            m = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text(), re.M)
        except OSError:
            continue
        total += int(m.group(1)) if m else 0
    return total


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devicegraph", default=str(ROOT / "target/release/devicegraph"))
    ap.add_argument("--sim", default=str(ROOT / "target/release/devicegraph-sim"))
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5, help="cold dashboards per gateway")
    ap.add_argument("--peer-fork", type=int, default=1,
                    help="Hive Gateway --fork (1: one Node process, its CLI's default)")
    ap.add_argument("--node", default="node")
    args = ap.parse_args()
    for tool in ("wrk", args.node):
        if not shutil.which(tool):
            print(f"{tool} not found", file=sys.stderr)
            return 2
    if not (HERE / "node_modules/@graphql-hive/gateway").is_dir():
        print("benches/peer/node_modules is missing: run `npm ci` in benches/peer "
              "(bash benches/peer/run.sh does)", file=sys.stderr)
        return 2
    node_version = subprocess.run([args.node, "--version"], capture_output=True,
                                  text=True).stdout.strip()
    packages = ["@graphql-hive/gateway", "@graphql-hive/gateway-runtime",
                "@graphql-mesh/compose-cli", "@omnigraph/openapi",
                "@graphql-mesh/transport-rest", "@graphql-mesh/plugin-response-cache",
                "graphql"]
    print(f"# peer: Node {node_version}, " +
          ", ".join(f"{p} {package_version(p)}" for p in packages))

    workdir = Path(tempfile.mkdtemp(prefix="devicegraph-peer-"))
    sim = cmp.Sim(args.sim, workdir)
    procs = [sim.proc]
    try:
        dg = cmp.Gateway("devicegraph", args.devicegraph, sim, workdir)
        procs.append(dg.proc)
        tokens = login(sim.base_url)
        peer = Peer(args.node, sim, tokens, workdir, args.peer_fork)
        procs.append(peer.proc)
        tree = process_tree(peer.proc.pid)
        print(f"# peer processes: {len(tree)} (pids {tree}; --fork {args.peer_fork})")
        gateways = [dg, peer]

        catalog = cmp.http(f"{sim.root}/_sim/catalog")
        campaign = max((c for c in catalog["campaigns"] if c["account"] == ACCOUNT),
                       key=lambda c: c.get("devices", 0))["id"]
        need = 51 + 2 * 50 * args.rounds
        imeis = campaign_imeis(sim.base_url, tokens, campaign, need)
        if len(imeis) < need:
            raise RuntimeError(f"campaign {campaign} has {len(imeis)} devices, {need} needed")
        warm_imeis, cold_imeis = imeis[:51], imeis[51:]
        cases = {
            "case 1: one device card": devicegraph_cards(warm_imeis[:1]),
            "case 2: 50-card dashboard": devicegraph_cards(warm_imeis[1:51]),
        }

        # Checks: no errors, the same facts, warm answers with no upstream call.
        for name, query in cases.items():
            dg_data, peer_data = dg.query(query), peer.query(query)
            differ = [alias for alias, card in dg_data.items()
                      if not same_card(card, peer_data, alias)]
            print(f"# check: {name}: {len(dg_data)} card(s), {len(differ)} differ "
                  f"(IMEI, make, model, firmware, status, upgrade campaigns and statuses, "
                  f"number of check-ins)")
            if differ:
                alias = differ[0]
                print(json.dumps({"devicegraph": dg_data[alias], "peer": {
                    k: v for k, v in peer_data.items() if k.startswith(f"{alias}_")}},
                    indent=1)[:3000])
                raise RuntimeError("the two gateways disagree")
        warm_calls = {}
        # With --peer-fork N each worker has its own cache: several requests (a new
        # connection each, spread over the workers) warm them all, then check.
        repeat = 1 if args.peer_fork <= 1 else 4 * args.peer_fork
        for g in gateways:
            for name, query in cases.items():
                for _ in range(repeat):
                    g.query(query)
                sim.reset()
                for _ in range(repeat):
                    g.query(query)
                warm_calls[(g.label, name)] = sim.calls()
        for (label, name), calls in warm_calls.items():
            print(f"# check: {label}, {name} warm: {sum(calls.values())} upstream calls {calls}")
        if any(warm_calls[("peer", n)] for n in cases):
            raise RuntimeError("the warm peer called upstream: its response cache is not working")

        start_rss = {g.label: memory_kib(g.proc.pid, "VmRSS") for g in gateways}
        print(f"# RSS after start and the checks: devicegraph {mib(start_rss['devicegraph'])} "
              f"MiB, peer {mib(start_rss['peer'])} MiB")
        print(f"\n# warm (wrk, {args.connections} connections, {args.slices} x {args.seconds}s "
              f"slices per gateway, ABBA)\n", flush=True)
        rows = []
        for name, query in cases.items():
            bodies = {"devicegraph": {"query": query, "variables": {}},
                      "peer": {"query": translate(query), "variables": {}}}
            runs = {g.label: [] for g in gateways}
            upstream = {g.label: 0 for g in gateways}
            for i in range(args.slices):
                for g in (gateways if i % 2 == 0 else gateways[::-1]):
                    sim.reset()
                    runs[g.label].append(cmp.wrk(g.url, bodies[g.label], args.seconds,
                                                 args.connections, workdir))
                    upstream[g.label] += sum(sim.calls().values())
            row = {"case": name}
            for g in gateways:
                r = runs[g.label]
                row[g.label] = {k: statistics.mean(x[k] for x in r) for k in ("rps", "p50", "p99")}
                row[g.label]["non2xx"] = sum(x["non2xx"] for x in r)
                row[g.label]["upstream"] = upstream[g.label]
                row[g.label]["hwm"] = memory_kib(g.proc.pid, "VmHWM")
                row[g.label]["bytes"] = len(json.dumps(
                    cmp.http(g.url, bodies[g.label]), separators=(",", ":")))
            rows.append(row)

        print("| case | devicegraph req/s | peer req/s | devicegraph/peer | "
              "p50 ms dg / peer | p99 ms dg / peer | peak RSS MiB dg / peer | "
              "answer bytes dg / peer | upstream calls in slices dg / peer | non-2xx |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in rows:
            a, b = row["devicegraph"], row["peer"]
            ratio = a["rps"] / b["rps"] if b["rps"] else float("nan")
            print(f"| {row['case']} | {a['rps']:.0f} | {b['rps']:.0f} | {ratio:.1f}x | "
                  f"{a['p50']:.2f} / {b['p50']:.2f} | {a['p99']:.2f} / {b['p99']:.2f} | "
                  f"{mib(a['hwm'])} / {mib(b['hwm'])} | {a['bytes']} / {b['bytes']} | "
                  f"{a['upstream']} / {b['upstream']} | {a['non2xx'] + b['non2xx']} |")
        print(f"\n# cold 50-card dashboard, simulator at 50 ms, fresh IMEIs "
              f"({args.rounds} rounds each)\n", flush=True)
        cold = {}
        for i, g in enumerate(gateways):
            own = cold_imeis[i * 50 * args.rounds:(i + 1) * 50 * args.rounds]
            cold[g.label] = cmp.cold_dashboards(sim, g, own, args.rounds)
            cold[g.label]["hwm"] = memory_kib(g.proc.pid, "VmHWM")
        final_tree = process_tree(peer.proc.pid)
        print("| case | devicegraph median ms | peer median ms | devicegraph upstream calls "
              "| peer upstream calls | peak RSS MiB dg / peer (end) |")
        print("| --- | ---: | ---: | --- | --- | ---: |")
        a, b = cold["devicegraph"], cold["peer"]
        print(f"| case 5: cold 50-card dashboard @ 50 ms | {a['p50_ms']:.0f} | {b['p50_ms']:.0f} | "
              f"{a['calls']:.0f} {a['last']} | {b['calls']:.0f} {b['last']} | "
              f"{mib(a['hwm'])} / {mib(b['hwm'])} |")
        print(f"\nPeak RSS is VmHWM (each process's peak since it started) read after each "
              f"case, so a later case includes the earlier ones; the peer's is summed over its "
              f"{len(final_tree)} process(es). Upstream calls in the slices: calls the "
              f"simulator counted while wrk ran (0: answered from cache). Logs: {workdir}")
    finally:
        for proc in reversed(procs):
            cmp.stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
