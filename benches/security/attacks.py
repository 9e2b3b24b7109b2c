#!/usr/bin/env python3
"""Reproducible attacks on devicegraph ("safe to expose").

Starts `devicegraph-sim` and `devicegraph` (thingspace mode, two API keys,
introspection and GraphiQL off, default limits) on loopback, runs each attack, and
records for it: HTTP status, `extensions.code`, time to the answer, upstream calls
made (the simulator's `/_sim/stats`), the gateway's RSS before and after, and how
`/healthz` answered meanwhile (polled every 50 ms from its own thread). Prints one
Markdown table and writes it, with details, to `benches/security/results.md`.

Python 3.11 standard library only. Every loop is bounded in time. Only loopback
addresses are used. Run through `bash benches/security/run.sh` (builds first).

    python3 benches/security/attacks.py [--out PATH] [--keep-logs]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_BIN = ROOT / "target" / "release" / "devicegraph"
SIM_BIN = ROOT / "target" / "release" / "devicegraph-sim"

ACCOUNT = "0000123456-00001"
# The simulated fleet: large enough that every attack gets IMEIs nobody cached.
SIM_DEVICES = 200_000
SIM_CREDS = {
    "client_id": "sim-client",
    "client_secret": "sim-secret",
    "username": "sim-user",
    "password": "sim-password",
}
ACCEPT = "application/graphql-response+json, application/json;q=0.9"
# Ask the gateway for extensions.cost (estimated and actual upstream calls).
COST_HEADER = "x-devicegraph-cost"
HTTP_TIMEOUT = 60.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- HTTP


@dataclass
class Resp:
    status: int | None
    body: bytes
    ms: float
    headers: dict = field(default_factory=dict)
    error: str | None = None

    def json(self):
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def codes(self) -> list[str]:
        """`extensions.code` of every GraphQL error, or a problem+json `code`."""
        doc = self.json()
        if self.error:
            return [f"<{self.error.split('(')[0]}>"]
        if not isinstance(doc, dict):
            return []
        out = []
        for err in doc.get("errors") or []:
            code = ((err or {}).get("extensions") or {}).get("code")
            out.append(code or "<no code>")
        if not out and isinstance(doc.get("code"), str):
            out.append(doc["code"])
        return out

    def error_extensions(self) -> list[dict]:
        doc = self.json()
        if not isinstance(doc, dict):
            return []
        return [(e or {}).get("extensions") or {} for e in doc.get("errors") or []]


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict | None = None, timeout: float = HTTP_TIMEOUT) -> Resp:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Resp(resp.status, data, (time.monotonic() - started) * 1000,
                    {k.lower(): v for k, v in resp.getheaders()})
    except (OSError, http.client.HTTPException) as e:
        return Resp(None, b"", (time.monotonic() - started) * 1000, error=repr(e))
    finally:
        conn.close()


def raw_post(port: int, path: str, body: bytes, headers: dict,
             timeout: float = HTTP_TIMEOUT) -> Resp:
    """POST over a raw socket that watches for an early answer while sending.

    A server may answer (413) as soon as it sees `Content-Length` and close without
    reading the body; http.client then fails on a broken pipe and the answer is lost.
    Here the body goes out in chunks, and an answer that arrives first is read.
    """
    started = time.monotonic()
    deadline = started + timeout
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    data = head.encode() + body
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            sent = 0
            while sent < len(data) and time.monotonic() < deadline:
                readable, writable, _ = select.select([s], [s], [], 1.0)
                if readable:
                    break  # the server answered before taking the whole body
                if writable:
                    try:
                        sent += s.send(data[sent:sent + 65536])
                    except OSError:
                        break
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                received += chunk
    except OSError as e:
        return Resp(None, b"", (time.monotonic() - started) * 1000, error=repr(e))
    ms = (time.monotonic() - started) * 1000
    head_raw, _, payload = received.partition(b"\r\n\r\n")
    lines = head_raw.decode(errors="replace").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return Resp(None, received, ms, error="no HTTP answer")
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", payload
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        payload = out
    return Resp(status, payload, ms, hdrs)


def gql(port: int, key: str | None, query: str, variables: dict | None = None,
        cost: bool = True, content_type: str = "application/json",
        timeout: float = HTTP_TIMEOUT) -> Resp:
    headers = {"Accept": ACCEPT}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    if cost:
        headers[COST_HEADER] = "1"
    if content_type == "application/json":
        payload: dict = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        body = json.dumps(payload, separators=(",", ":")).encode()
    else:
        body = query.encode()
    headers["Content-Type"] = content_type
    if len(body) > 256 * 1024:
        return raw_post(port, "/graphql", body, headers, timeout)
    return http_request(port, "POST", "/graphql", body, headers, timeout)


def actual_calls(resp: Resp) -> int | None:
    doc = resp.json()
    if not isinstance(doc, dict):
        return None
    cost = (doc.get("extensions") or {}).get("cost") or {}
    return cost.get("upstreamCalls")


def estimated_calls(resp: Resp) -> int | None:
    doc = resp.json()
    if not isinstance(doc, dict):
        return None
    cost = (doc.get("extensions") or {}).get("cost")
    if cost is None:
        for ext in resp.error_extensions():
            if "cost" in ext:
                cost = ext["cost"]
                break
    return ((cost or {}).get("estimate") or {}).get("upstreamCalls")


# ----------------------------------------------------------------- the processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("DEVICEGRAPH_")}


class Simulator:
    def __init__(self, workdir: Path):
        self.log_path = workdir / "sim.log"
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(SIM_BIN), "--listen", "127.0.0.1:0", "--devices", str(SIM_DEVICES)],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=clean_env(),
            cwd=workdir)

        def banner():
            if self.proc.poll() is not None:
                raise RuntimeError(f"devicegraph-sim exited: {self.log_path.read_text()}")
            for line in self.log_path.read_text(errors="replace").splitlines():
                if "base URL http://" in line:
                    return line.split("base URL ", 1)[1].strip()
            return None

        self.base_url = wait_for(banner, 60, "the simulator's base URL")
        hostport = self.base_url.split("//", 1)[1].split("/", 1)[0]
        self.port = int(hostport.rsplit(":", 1)[1])

    def get(self, path: str):
        r = http_request(self.port, "GET", path)
        if r.status != 200:
            raise RuntimeError(f"sim GET {path}: {r.status} {r.body[:200]!r}")
        return r.json()

    def reset(self) -> None:
        http_request(self.port, "POST", "/_sim/reset")

    def total_calls(self) -> int:
        return sum(self.get("/_sim/stats")["calls"].values())

    def peak_rate(self) -> int:
        return self.get("/_sim/stats").get("peakTotalRatePerSecond", 0)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log_file.close()


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Gateway:
    """`devicegraph` in thingspace mode against the simulator, production-like."""

    def __init__(self, workdir: Path, sim: Simulator, key_a: str, key_b: str):
        self.port = free_port()
        self.config_path = workdir / "gateway.toml"
        # Everything not set here keeps its default (config/default.toml): the limits
        # under test, header_read_timeout = 10s, and so on.
        self.config_path.write_text(f"""
[server]
listen = "127.0.0.1:{self.port}"

[upstream]
mode = "thingspace"
base_url = "{sim.base_url}"

[auth]
mode = "api_key"
api_keys = [
  {{ name = "tenant-a", sha256 = "{sha256_hex(key_a)}", accounts = ["{ACCOUNT}"] }},
  {{ name = "tenant-b", sha256 = "{sha256_hex(key_b)}", accounts = ["{ACCOUNT}"] }},
]

[graphql]
introspection = false
graphiql = false

[log]
level = "info"
""")
        env = clean_env()
        # Credentials from the environment, as production would set them.
        env.update({
            "DEVICEGRAPH_UPSTREAM__CLIENT_ID": SIM_CREDS["client_id"],
            "DEVICEGRAPH_UPSTREAM__CLIENT_SECRET": SIM_CREDS["client_secret"],
            "DEVICEGRAPH_UPSTREAM__USERNAME": SIM_CREDS["username"],
            "DEVICEGRAPH_UPSTREAM__PASSWORD": SIM_CREDS["password"],
        })
        self.log_path = workdir / "gateway.log"
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(GATEWAY_BIN), "--config", str(self.config_path), "serve"],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=env, cwd=workdir)

        def healthy():
            if self.proc.poll() is not None:
                raise RuntimeError(f"devicegraph exited: {self.log_path.read_text()}")
            return http_request(self.port, "GET", "/healthz", timeout=2).status == 200

        wait_for(healthy, 60, "the gateway's /healthz")

    def rss(self) -> float | None:
        return rss_mib(self.proc.pid)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log_file.close()


# ------------------------------------------------------------- what we observe


class HealthWatch:
    """Polls /healthz every 50 ms on a fresh connection; keeps the worst latency."""

    def __init__(self, port: int):
        self.port = port
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            r = http_request(self.port, "GET", "/healthz", timeout=5)
            if r.status == 200:
                self.latencies.append(r.ms)
            else:
                self.failures += 1
                self.latencies.append(r.ms)
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> str:
        if not self.latencies:
            return "n/a"
        text = f"{max(self.latencies):.0f} (n={len(self.latencies)})"
        if self.failures:
            text += f", {self.failures} failed"
        return text


@dataclass
class Row:
    key: str
    attack: str
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)
    time_ms: str = ""
    upstream: int | None = None
    rss_before: float | None = None
    rss_after: float | None = None
    health: str = ""
    notes: str = ""

    def add(self, resp: Resp) -> None:
        self.requests += 1
        self.statuses[str(resp.status) if resp.status else "no answer"] += 1
        codes = resp.codes()
        if codes:
            for code in sorted(set(codes)):
                self.codes[code] += 1
        else:
            self.codes["(none)"] += 1


def fmt_counter(c: Counter) -> str:
    if not c:
        return "-"
    return ", ".join(k if v == 1 else f"{k} ×{v}" for k, v in c.most_common())


def fmt_ms(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    values = sorted(values)
    p50 = statistics.median(values)
    return f"p50 {p50:.1f} / max {values[-1]:.1f}"


class Bench:
    def __init__(self, sim: Simulator, gw: Gateway):
        self.sim = sim
        self.gw = gw
        self.rows: list[Row] = []
        self.details: list[str] = []

    def measure(self, row: Row, body) -> Row:
        """Runs `body(row)` with upstream calls, RSS and /healthz recorded."""
        log(f"attack {row.key}: {row.attack}")
        self.sim.reset()
        time.sleep(0.05)
        before = self.sim.total_calls()
        row.rss_before = self.gw.rss()
        with HealthWatch(self.gw.port) as watch:
            body(row)
            # Let anything the attack set off upstream land in the stats.
            time.sleep(0.3)
        row.upstream = self.sim.total_calls() - before
        if row.upstream >= 50:
            row.notes += f"; simulator's peak rate {self.sim.peak_rate()} calls/s"
        row.rss_after = self.gw.rss()
        row.health = watch.summary()
        self.rows.append(row)
        log(f"  -> {fmt_counter(row.statuses)} | {fmt_counter(row.codes)} | {row.time_ms} ms"
            f" | upstream {row.upstream} | health {row.health} | {row.notes}")
        return row


# ------------------------------------------------------------------ test data


def luhn_digit(digits14: str) -> str:
    total = 0
    for i, ch in enumerate(digits14):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def made_up_imeis(n: int, known_tacs: set[str], seed: int = 7) -> list[str]:
    """Luhn-valid IMEIs on a TAC the simulator does not use."""
    tac = next(t for t in ("99999999", "99000001", "35999999") if t not in known_tacs)
    rng = random.Random(seed)
    serials = rng.sample(range(1_000_000), n)
    return [f"{tac}{s:06d}" + luhn_digit(f"{tac}{s:06d}") for s in serials]


class SimClient:
    """Reads campaign pages straight from the simulator (to find real IMEIs)."""

    def __init__(self, sim: Simulator):
        self.port = sim.port
        basic = base64.b64encode(
            f"{SIM_CREDS['client_id']}:{SIM_CREDS['client_secret']}".encode()).decode()
        r = http_request(self.port, "POST", "/api/ts/v1/oauth2/token",
                         b"grant_type=client_credentials",
                         {"Authorization": f"Basic {basic}",
                          "Content-Type": "application/x-www-form-urlencoded"})
        self.token = r.json()["access_token"]
        r = http_request(self.port, "POST", "/api/m2m/v1/session/login",
                         json.dumps({"username": SIM_CREDS["username"],
                                     "password": SIM_CREDS["password"]}).encode(),
                         {"Authorization": f"Bearer {self.token}",
                          "Content-Type": "application/json"})
        self.session = r.json()["sessionToken"]

    def campaign_imeis(self, account: str, campaign: str, limit: int) -> list[str]:
        out: list[str] = []
        cursor = ""
        for _ in range(200):
            path = f"/api/fota/v3/reports/{account}/campaigns/{campaign}/devices"
            if cursor:
                path += f"?lastSeenDeviceId={cursor}"
            r = http_request(self.port, "GET", path, headers={
                "Authorization": f"Bearer {self.token}", "VZ-M2M-Token": self.session})
            page = r.json() or {}
            for d in page.get("deviceList") or []:
                imei = d.get("deviceId") or d.get("imei")
                if imei:
                    out.append(str(imei))
            if not page.get("hasMoreData") or len(out) >= limit:
                break
            cursor = page.get("lastSeenDeviceId") or ""
        return out[:limit]


# -------------------------------------------------------------------- queries


def fan_out(levels: int, account: str, imei: str, tag: str = "F") -> str:
    """`levels` fragments, each spreading the previous twice: 2^levels fields."""
    parts = [f"query {{ ...{tag}{levels} }}",
             f'fragment {tag}0 on Query {{ device(account: "{account}", imei: "{imei}") '
             "{ imei firmware } }"]
    for i in range(1, levels + 1):
        parts.append(f"fragment {tag}{i} on Query {{ ...{tag}{i - 1} ...{tag}{i - 1} }}")
    return " ".join(parts)


DEVICES_Q = "query($a: String!, $i: [IMEI!]!) { devices(account: $a, imeis: $i) { %s } }"
HISTORY_SEL = "imei upgradeHistory { status } checkIns { result }"
DASHBOARD_SEL = ("imei firmware upgradeHistory { status } checkIns(last: 3) { result } "
                 "lastCheckIn { result }")
CAMPAIGN_Q = """query($a: String!, $c: ID!) { campaign(account: $a, id: $c) {
  totalDevices
  devices(first: 500) { edges { node { imei status device { firmware } } }
                        pageInfo { hasNextPage endCursor } } } }"""


# -------------------------------------------------------------------- attacks


def attack_fan_out(b: Bench, key_a: str, imei: str, other_account: str) -> None:
    for label, account in (("a1", ACCOUNT), ("a2", other_account)):
        q = fan_out(30, account, imei)
        row = Row(label, f"fragment fan-out: 30 fragments each spreading the previous twice "
                         f"({len(q):,} B; 2^30 copies of `device {{ imei firmware }}`), account "
                         f"{'readable' if account == ACCOUNT else 'NOT readable'} by the key")
        times: list[float] = []

        def body(row: Row) -> None:
            for _ in range(5):
                r = gql(b.gw.port, key_a, q)
                row.add(r)
                times.append(r.ms)
            row.time_ms = fmt_ms(times)
            msgs = {e.get("message") for e in (r.json() or {}).get("errors", [])}
            row.notes = "; ".join(sorted(m for m in msgs if m))[:160]

        b.measure(row, body)


def attack_largest_allowed(b: Bench, key_a: str, imei: str) -> None:
    """The heaviest fragment document the default limits accept: 11 fragments each
    spreading the previous twice under one `device` (4,096 fields once spread, under
    `max_fields` = 5,000): what validation and execution cost when nothing refuses."""
    parts = [f'query {{ device(account: "{ACCOUNT}", imei: "{imei}") {{ ...K11 }} }}',
             "fragment K0 on Device { imei firmware }"]
    for i in range(1, 12):
        parts.append(f"fragment K{i} on Device {{ ...K{i - 1} ...K{i - 1} }}")
    q = " ".join(parts)
    row = Row("k", f"largest accepted fragment document: 2^11 spreads of 2 fields under one "
                   f"`device` ({len(q):,} B, 4,096 fields once spread), cached device, x 10")
    times: list[float] = []

    def body(row: Row) -> None:
        for _ in range(10):
            r = gql(b.gw.port, key_a, q)
            row.add(r)
            times.append(r.ms)
        row.time_ms = fmt_ms(times)
        row.notes = "accepted and answered; validation walks the 4,096 spread fields"

    b.measure(row, body)


def attack_flood(b: Bench, keys: list[str], imei: str) -> None:
    row = Row("b", "flood: 200 fan-out requests 2^20..2^30 from 16 threads "
                   "(8 per key)")
    lock = threading.Lock()
    times: list[float] = []
    messages: Counter = Counter()
    counter = iter(range(200))

    def worker(key: str) -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            k = 20 + i % 11
            r = gql(b.gw.port, key, fan_out(k, ACCOUNT, imei, tag=f"G{i}_"), cost=False)
            with lock:
                row.add(r)
                times.append(r.ms)
                for e in (r.json() or {}).get("errors") or []:
                    messages[e.get("message", "")] += 1

    def body(row: Row) -> None:
        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(keys[t % 2],), daemon=True)
                   for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        wall = (time.monotonic() - started) * 1000
        row.time_ms = fmt_ms(times)
        row.notes = (f"all 200 answered in {wall:.0f} ms wall clock; messages: "
                     + fmt_counter(messages))

    b.measure(row, body)


def attack_copies(b: Bench, key_a: str, imei: str) -> None:
    # Cache the IMEI first with a normal query.
    warm = gql(b.gw.port, key_a, DEVICES_Q % "imei firmware", {"a": ACCOUNT, "i": [imei]})
    assert warm.status == 200, warm.body[:300]
    n = 55_000
    copies = [imei] * n
    inline = ('{ devices(account: "%s", imeis: [%s]) { imei firmware } }'
              % (ACCOUNT, ",".join(f'"{x}"' for x in copies)))
    variants = [
        ("c1", f"{n:,} copies of one cached IMEI inline in the query (JSON body)",
         lambda: gql(b.gw.port, key_a, inline)),
        ("c2", f"{n:,} copies inline, Content-Type application/graphql (no JSON escaping)",
         lambda: gql(b.gw.port, key_a, inline, content_type="application/graphql")),
        ("c3", f"{n:,} copies as the `imeis` variable",
         lambda: gql(b.gw.port, key_a, DEVICES_Q % "imei firmware",
                     {"a": ACCOUNT, "i": copies})),
        ("c4", "1,000 copies (= max_list_length) as the variable",
         lambda: gql(b.gw.port, key_a, DEVICES_Q % "imei firmware",
                     {"a": ACCOUNT, "i": [imei] * 1000})),
    ]
    sizes = {
        "c1": len(json.dumps({"query": inline}, separators=(",", ":"))),
        "c2": len(inline.encode()),
        "c3": len(json.dumps({"query": DEVICES_Q % "imei firmware",
                              "variables": {"a": ACCOUNT, "i": copies}},
                             separators=(",", ":"))),
    }
    for label, title, send in variants:
        row = Row(label, title)

        def body(row: Row, send=send, label=label) -> None:
            r = send()
            row.add(r)
            row.time_ms = fmt_ms([r.ms])
            notes = []
            if label in sizes:
                notes.append(f"request body {sizes[label]:,} B (limit 1,048,576)")
            doc = r.json() or {}
            devices = ((doc.get("data") or {}).get("devices"))
            if devices is not None:
                notes.append(f"answered {len(devices)} devices, response {len(r.body):,} B")
            msg = next((e.get("message") for e in doc.get("errors") or []), None) \
                or doc.get("detail")
            if msg:
                notes.append(f"“{msg[:110]}”")
            row.notes = "; ".join(notes)

        b.measure(row, body)


def attack_amplification(b: Bench, key: str, real: list[str], fake: list[str]) -> None:
    for label, title, imeis in [
        ("d1", f"upstream amplification: `devices` of {len(real):,} uncached real IMEIs "
               "with upgradeHistory { status } + checkIns { result }", real),
        ("d2", f"the same with {len(fake):,} made-up valid-Luhn IMEIs", fake),
    ]:
        row = Row(label, title)

        def body(row: Row, imeis=imeis) -> None:
            r = gql(b.gw.port, key, DEVICES_Q % HISTORY_SEL, {"a": ACCOUNT, "i": imeis})
            row.add(r)
            row.time_ms = fmt_ms([r.ms])
            doc = r.json() or {}
            data = (doc.get("data") or {}).get("devices")
            notes = [f"estimate {estimated_calls(r)}"]
            if actual_calls(r) is not None:
                notes.append(f"gateway's count {actual_calls(r)}")
            if data is not None:
                notes.append(f"{sum(1 for d in data if d)} of {len(data)} devices found")
            msg = next((e.get("message") for e in doc.get("errors") or []), None)
            if msg:
                notes.append(f"“{msg[:120]}”")
            row.notes = "; ".join(notes)

        b.measure(row, body)


def attack_amplification_small(b: Bench, key: str, real_small: list[str],
                               fake_small: list[str]) -> None:
    for label, title, imeis in [
        ("d3", f"`devices` of {len(real_small)} uncached real IMEIs with upgradeHistory + "
               "checkIns (estimate just under max_upstream_calls = 500)", real_small),
        ("d4", f"the same with {len(fake_small)} made-up valid-Luhn IMEIs", fake_small),
    ]:
        row = Row(label, title)

        def body(row: Row, imeis=imeis) -> None:
            r = gql(b.gw.port, key, DEVICES_Q % HISTORY_SEL, {"a": ACCOUNT, "i": imeis})
            row.add(r)
            row.time_ms = fmt_ms([r.ms])
            doc = r.json() or {}
            data = (doc.get("data") or {}).get("devices")
            notes = [f"estimate {estimated_calls(r)}, gateway's count {actual_calls(r)}"]
            if data is not None:
                notes.append(f"{sum(1 for d in data if d)} of {len(data)} devices found")
            row.notes = "; ".join(notes)

        b.measure(row, body)


def attack_budget_drain(b: Bench, key_a: str, key_b: str, pool: list[str],
                        victim_pool: list[str], seconds: float = 30.0) -> None:
    row = Row("e", f"budget drain: tenant-a sends 400-call operations (399 uncached "
                   f"devices + upgradeHistory) from 4 threads for {seconds:.0f} s; "
                   "tenant-b reads 1 uncached device + upgradeHistory every 0.5 s")
    lock = threading.Lock()
    pool = list(pool)
    stats = Counter()
    a_calls = 0
    a_times: list[float] = []
    v_times: list[float] = []
    v_status = Counter()
    v_codes = Counter()
    v_calls = 0
    warm_times: list[float] = []
    warm_status = Counter()

    def attacker(deadline: float) -> None:
        nonlocal a_calls
        while time.monotonic() < deadline:
            with lock:
                if len(pool) < 399:
                    stats["pool exhausted"] += 1
                    return
                batch = pool[:399]
                del pool[:399]
            r = gql(b.gw.port, key_a, DEVICES_Q % "imei upgradeHistory { status }",
                    {"a": ACCOUNT, "i": batch})
            codes = r.codes()
            ran = r.status == 200 and (r.json() or {}).get("data") is not None
            with lock:
                row.add(r)
                if ran:
                    stats["succeeded" if not codes else
                          "ran with errors " + ",".join(sorted(set(codes)))] += 1
                    a_calls += actual_calls(r) or 0
                    a_times.append(r.ms)
                else:
                    pool.extend(batch)  # not consumed: reuse for the next try
                    budget = any("cost" in e for e in r.error_extensions())
                    if "RATE_LIMITED" in codes:
                        stats["RATE_LIMITED (budget)" if budget else "RATE_LIMITED (inbound)"] += 1
                    else:
                        stats[",".join(sorted(set(codes))) or str(r.status)] += 1
            if codes:
                time.sleep(0.05)

    def victim(deadline: float) -> None:
        nonlocal v_calls
        i = 0
        while time.monotonic() < deadline and i < len(victim_pool) - 1:
            imei = victim_pool[i]
            i += 1
            r = gql(b.gw.port, key_b,
                    'query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) '
                    '{ imei firmware upgradeHistory { status } } }',
                    {"a": ACCOUNT, "i": imei})
            ok = r.status == 200 and not r.codes()
            v_times.append(r.ms)
            v_status["ok" if ok else str(r.status)] += 1
            for c in set(r.codes()):
                v_codes[c] += 1
            v_calls += actual_calls(r) or 0
            # And a device it read before (cached): does the drain slow that too?
            w = gql(b.gw.port, key_b,
                    'query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) '
                    '{ imei firmware upgradeHistory { status } } }',
                    {"a": ACCOUNT, "i": victim_pool[-1]})
            warm_times.append(w.ms)
            warm_status["ok" if w.status == 200 and not w.codes() else str(w.status)] += 1
            time.sleep(max(0.0, 0.5 - (r.ms + w.ms) / 1000))

    # The victim's request without the drain, on devices nobody cached.
    baseline = []
    for imei in victim_pool[-3:]:
        r = gql(b.gw.port, key_b,
                'query($a: String!, $i: IMEI!) { device(account: $a, imei: $i) '
                '{ imei firmware upgradeHistory { status } } }', {"a": ACCOUNT, "i": imei})
        baseline.append(r.ms)
    victim_pool = victim_pool[:-3] + victim_pool[-1:]  # the last one is now cached

    def body(row: Row) -> None:
        started = time.monotonic()
        deadline = started + seconds
        threads = [threading.Thread(target=attacker, args=(deadline,), daemon=True)
                   for _ in range(4)]
        vt = threading.Thread(target=victim, args=(deadline,), daemon=True)
        for t in threads + [vt]:
            t.start()
        for t in threads + [vt]:
            t.join(timeout=seconds + 90)
        elapsed = time.monotonic() - started
        row.time_ms = f"tenant-a ops {fmt_ms(a_times)}; tenant-b {fmt_ms(v_times)}"
        ok_v = v_status.get("ok", 0)
        total_v = sum(v_status.values())
        row.notes = (
            f"tenant-a: {stats['succeeded']} ops ran ({a_calls} upstream calls = "
            f"{a_calls / elapsed:.1f}/s over {elapsed:.1f} s), "
            f"{stats['RATE_LIMITED (budget)']} refused RATE_LIMITED by the upstream budget, "
            f"{stats['RATE_LIMITED (inbound)']} by the inbound rate limit"
            + "".join(f", {v} {k}" for k, v in stats.items()
                      if k not in ("succeeded", "RATE_LIMITED (budget)",
                                   "RATE_LIMITED (inbound)"))
            + f"; tenant-b: {ok_v}/{total_v} succeeded ({v_calls} upstream calls), "
              f"latency {fmt_ms(v_times)} ms (without the drain: {fmt_ms(baseline)} ms); "
              f"tenant-b cached reads meanwhile: {warm_status.get('ok', 0)}/"
              f"{sum(warm_status.values())} ok, {fmt_ms(warm_times)} ms"
            + (f", codes {fmt_counter(v_codes)}" if v_codes else ""))

    b.measure(row, body)


def attack_slowloris(b: Bench, key_a: str, imei: str, sockets: int = 300,
                     seconds: float = 15.0) -> None:
    row = Row("f", f"slowloris: {sockets} sockets trickling one header byte per second "
                   f"for {seconds:.0f} s, normal requests every 200 ms meanwhile")
    normal_times: list[float] = []
    normal = Counter()

    def normal_traffic(stop: threading.Event) -> None:
        while not stop.is_set():
            r = gql(b.gw.port, key_a, DEVICES_Q % "imei firmware",
                    {"a": ACCOUNT, "i": [imei]}, timeout=10)
            normal["ok" if r.status == 200 and not r.codes() else str(r.status)] += 1
            normal_times.append(r.ms)
            stop.wait(0.2)

    def body(row: Row) -> None:
        socks: list[socket.socket] = []
        opened_at: dict[int, float] = {}
        closed_at: dict[int, float] = {}
        answered: Counter = Counter()
        got_answer: set[int] = set()
        connect_fail = 0
        started = time.monotonic()
        for _ in range(sockets):
            try:
                s = socket.create_connection(("127.0.0.1", b.gw.port), timeout=5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                s.setblocking(False)
                socks.append(s)
                opened_at[s.fileno()] = time.monotonic()
            except OSError:
                connect_fail += 1
        stop = threading.Event()
        nt = threading.Thread(target=normal_traffic, args=(stop,), daemon=True)
        nt.start()
        deadline = started + seconds
        next_tick = time.monotonic()
        while time.monotonic() < deadline:
            live = [s for s in socks if s.fileno() not in closed_at]
            if not live:
                break
            # Closed by the server: readable, and EOF (maybe after a response).
            readable, _, _ = select.select(live, [], [], 0.05)
            for s in readable:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if data:
                    # An answer (e.g. 408) before the close: note its status line.
                    if s.fileno() not in got_answer:
                        got_answer.add(s.fileno())
                        answered[data.split(b"\r\n", 1)[0].decode(errors="replace")] += 1
                    continue
                closed_at[s.fileno()] = time.monotonic()
            if time.monotonic() >= next_tick:
                next_tick += 1.0
                for s in live:
                    if s.fileno() in closed_at:
                        continue
                    try:
                        s.send(b"a")
                    except OSError:
                        closed_at[s.fileno()] = time.monotonic()
        still_open = sum(1 for s in socks if s.fileno() not in closed_at)
        stop.set()
        nt.join(timeout=15)
        close_after = sorted(closed_at[f] - opened_at[f] for f in closed_at)
        for s in socks:
            s.close()
        row.requests = len(socks) + sum(normal.values())
        row.statuses = Counter({"open after 15 s": still_open,
                                "closed by server": len(closed_at)})
        row.codes = Counter({f"normal: {k}": v for k, v in normal.items()})
        row.time_ms = f"normal requests {fmt_ms(normal_times)}"
        closed = (f"closed after {close_after[0]:.1f}–{close_after[-1]:.1f} s"
                  if close_after else "none closed")
        row.notes = (f"{still_open}/{len(socks)} still open after {seconds:.0f} s, {closed}"
                     + (f", first line sent back: {fmt_counter(answered)}" if answered
                        else ", closed without an answer")
                     + (f", {connect_fail} connects failed" if connect_fail else ""))

    b.measure(row, body)


def attack_parse_errors(b: Bench, key_a: str, imei: str) -> None:
    big = 300_000
    variants = [
        ("g1", "parse error: 300 KB query, a 300 KB string argument and unclosed braces",
         '{ device(account: "%s", imei: "%s") { imei firmware ' % (ACCOUNT, "A" * big)),
        ("g2", "parse error: 300 KB query, a 300 KB field name then `( }`",
         "{ " + "a" * big + " ( }"),
        ("g3", "300 KB query of 150,000 tokens (a b a b ...) with a syntax error",
         "{ " + "a " * (big // 2) + "!!! }"),
    ]
    for label, title, q in variants:
        row = Row(label, title)

        def body(row: Row, q=q) -> None:
            r = gql(b.gw.port, key_a, q)
            row.add(r)
            row.time_ms = fmt_ms([r.ms])
            doc = r.json() or {}
            msgs = [e.get("message") or "" for e in doc.get("errors") or []]
            longest = max((len(m.encode()) for m in msgs), default=0)
            row.notes = (f"query {len(q.encode()):,} B; longest error message {longest} B; "
                         f"whole response {len(r.body):,} B"
                         + (f"; “{msgs[0][:90]}”" if msgs else ""))

        b.measure(row, body)


def attack_suggestions(b: Bench, key_a: str, imei: str) -> None:
    variants = [
        ("h1", "misspelled Device field (`firmwar`), introspection off",
         '{ device(account: "%s", imei: "%s") { firmwar } }' % (ACCOUNT, imei)),
        ("h2", "misspelled root field (`devics`), introspection off",
         '{ devics(account: "%s", imeis: ["%s"]) { imei } }' % (ACCOUNT, imei)),
        ("h3", "`__schema` introspection query, introspection off",
         "{ __schema { types { name fields { name } } } }"),
    ]
    for label, title, q in variants:
        row = Row(label, title)

        def body(row: Row, q=q) -> None:
            r = gql(b.gw.port, key_a, q)
            row.add(r)
            row.time_ms = fmt_ms([r.ms])
            text = r.body.decode(errors="replace")
            doc = r.json() or {}
            msg = next((e.get("message") for e in doc.get("errors") or []), "")
            row.notes = (f"“Did you mean” in the answer: {'YES' if 'id you mean' in text else 'no'}"
                         + (f"; “{msg[:120]}”" if msg else f"; answer: {text[:160]}"))

        b.measure(row, body)


def check_config_cases(workdir: Path) -> list[Row]:
    """`devicegraph check-config` on open configs (no server started)."""
    rows = []
    cases = [
        ("i1", 'auth.mode = "none", listen 0.0.0.0:8080',
         '[server]\nlisten = "0.0.0.0:8080"\n[auth]\nmode = "none"\n'),
        ("i2", "the same with auth.allow_unauthenticated_public = true",
         '[server]\nlisten = "0.0.0.0:8080"\n[auth]\nmode = "none"\n'
         "allow_unauthenticated_public = true\n"),
        ("i3", 'auth.mode = "none", listen 127.0.0.1:8080 (control)',
         '[server]\nlisten = "127.0.0.1:8080"\n[auth]\nmode = "none"\n'),
    ]
    for label, title, text in cases:
        path = workdir / f"{label}.toml"
        path.write_text(text)
        log(f"attack {label}: check-config, {title}")
        started = time.monotonic()
        p = subprocess.run([str(GATEWAY_BIN), "check-config", "--config", str(path)],
                           capture_output=True, text=True, timeout=60, env=clean_env(),
                           cwd=workdir)
        ms = (time.monotonic() - started) * 1000
        out = (p.stdout + p.stderr).strip().replace(str(workdir) + "/", "")
        row = Row(label, f"`devicegraph check-config`: {title}", requests=1,
                  statuses=Counter({f"exit {p.returncode}": 1}), time_ms=f"{ms:.0f}",
                  notes=" ".join(out.split())[:400])
        rows.append(row)
        log(f"  -> exit {p.returncode}: {row.notes}")
    return rows


def legit_traffic(b: Bench, key_b: str, campaign: str, campaign_size: int,
                  dashboard: list[str]) -> None:
    for label, title, send, check in [
        ("j1", f"legitimate: campaign page of 500 devices with device {{ firmware }} "
               f"(campaign of {campaign_size:,} devices), cold",
         lambda: gql(b.gw.port, key_b, CAMPAIGN_Q, {"a": ACCOUNT, "c": campaign}), "campaign"),
        ("j2", "legitimate: the same campaign page, warm",
         lambda: gql(b.gw.port, key_b, CAMPAIGN_Q, {"a": ACCOUNT, "c": campaign}), "campaign"),
        ("j3", "legitimate: 100-device card dashboard (firmware, upgradeHistory, "
               "checkIns(last: 3), lastCheckIn), cold",
         lambda: gql(b.gw.port, key_b, DEVICES_Q % DASHBOARD_SEL,
                     {"a": ACCOUNT, "i": dashboard}), "devices"),
        ("j4", "legitimate: the same dashboard, warm",
         lambda: gql(b.gw.port, key_b, DEVICES_Q % DASHBOARD_SEL,
                     {"a": ACCOUNT, "i": dashboard}), "devices"),
    ]:
        row = Row(label, title)

        def body(row: Row, send=send, check=check) -> None:
            r = send()
            row.add(r)
            row.time_ms = fmt_ms([r.ms])
            doc = r.json() or {}
            data = doc.get("data") or {}
            if check == "campaign":
                edges = (((data.get("campaign") or {}).get("devices") or {}).get("edges")) or []
                with_fw = sum(1 for e in edges if ((e.get("node") or {}).get("device") or {})
                              .get("firmware"))
                what = f"{len(edges)} edges, {with_fw} with firmware"
            else:
                devices = data.get("devices") or []
                what = (f"{sum(1 for d in devices if d)} devices, "
                        f"{sum(1 for d in devices if d and d.get('upgradeHistory') is not None)}"
                        " with upgradeHistory")
            row.notes = (f"{what}; {len(doc.get('errors') or [])} errors; "
                         f"X-Cache {r.headers.get('x-cache')}; estimate {estimated_calls(r)}, "
                         f"actual {actual_calls(r)}")

        b.measure(row, body)


# --------------------------------------------------------------------- report


def md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: list[Row]) -> str:
    head = ("| # | attack | requests | HTTP status | `extensions.code` | time to answer (ms) "
            "| upstream calls | gateway RSS before → after (MiB) | `/healthz` max latency (ms) "
            "| notes |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        rss = ("-" if r.rss_before is None else
               f"{r.rss_before:.1f} → {r.rss_after:.1f}" if r.rss_after is not None else "-")
        lines.append("| " + " | ".join(md_escape(x) for x in [
            r.key, r.attack, str(r.requests), fmt_counter(r.statuses), fmt_counter(r.codes),
            r.time_ms or "-", "-" if r.upstream is None else str(r.upstream), rss,
            r.health or "-", r.notes or ""]) + " |")
    return head + "\n".join(lines) + "\n"


def git_describe() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benches" / "security" / "results.md"))
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the temporary directory with the processes' logs")
    args = parser.parse_args()
    for binary in (GATEWAY_BIN, SIM_BIN):
        if not binary.exists():
            print(f"{binary} is missing: run `cargo build --release -p devicegraph "
                  "-p devicegraph-sim` (or benches/security/run.sh)", file=sys.stderr)
            return 2

    workdir = Path(tempfile.mkdtemp(prefix="devicegraph-attacks-"))
    key_a = "dg-tenant-a-" + os.urandom(16).hex()
    key_b = "dg-tenant-b-" + os.urandom(16).hex()
    sim = gw = None
    started = time.monotonic()
    try:
        config_rows = check_config_cases(workdir)

        log(f"starting devicegraph-sim ({SIM_DEVICES:,} devices)")
        sim = Simulator(workdir)
        catalog = sim.get("/_sim/catalog")
        other_account = next(a for a in catalog["accounts"] if a != ACCOUNT)
        campaigns = sorted((c for c in catalog["campaigns"] if c["account"] == ACCOUNT),
                           key=lambda c: c["devices"])
        legit = next(c for c in campaigns if c["devices"] >= 500)
        sample = catalog["sampleImeis"][ACCOUNT][0]

        # Real IMEIs of the account, from campaigns other than the legitimate one.
        client = SimClient(sim)
        pool: list[str] = []
        seen = {sample}
        legit_imeis = set(client.campaign_imeis(ACCOUNT, legit["id"], 2000))
        for c in reversed(campaigns):
            if c["id"] == legit["id"]:
                continue
            for imei in client.campaign_imeis(ACCOUNT, c["id"], 8000):
                if imei not in seen and imei not in legit_imeis:
                    seen.add(imei)
                    pool.append(imei)
            if len(pool) >= 8000:
                break
        random.Random(42).shuffle(pool)
        need = 1000 + 249 + 100 + 120 + 399 * 12
        if len(pool) < need:
            raise RuntimeError(f"only {len(pool)} IMEIs found, {need} needed")
        take = iter(pool)
        real_1000 = [next(take) for _ in range(1000)]
        real_249 = [next(take) for _ in range(249)]
        dashboard = [next(take) for _ in range(100)]
        victim = [next(take) for _ in range(120)]
        drain = list(take)
        known_tacs = {x[:8] for x in pool} | {x[:8] for x in legit_imeis}
        fake = made_up_imeis(1249, known_tacs)
        fake_1000, fake_249 = fake[:1000], fake[1000:]

        log("starting devicegraph (thingspace mode)")
        gw = Gateway(workdir, sim, key_a, key_b)
        b = Bench(sim, gw)
        log(f"gateway on 127.0.0.1:{gw.port}, RSS {gw.rss():.1f} MiB; simulator on "
            f"127.0.0.1:{sim.port}")

        attack_fan_out(b, key_a, sample, other_account)
        attack_flood(b, [key_a, key_b], sample)
        attack_largest_allowed(b, key_a, sample)
        attack_copies(b, key_a, sample)
        attack_amplification(b, key_a, real_1000, fake_1000)
        # d3/d4 spend tenant-b's budget, so tenant-a starts the drain with a full one.
        attack_amplification_small(b, key_b, real_249, fake_249)
        attack_parse_errors(b, key_a, sample)
        attack_suggestions(b, key_a, sample)
        attack_slowloris(b, key_a, sample)
        # Let tenant-a's and tenant-b's upstream budgets refill (1,200 a minute).
        log("waiting 60 s for the per-key upstream budgets to refill")
        time.sleep(60)
        attack_budget_drain(b, key_a, key_b, drain, victim)
        log("waiting 60 s for the per-key upstream budgets to refill")
        time.sleep(60)
        legit_traffic(b, key_b, legit["id"], legit["devices"], dashboard)

        rows = config_rows + b.rows
        ran = ", ".join(r.key for r in rows)
        order = "abcdefghijk"
        rows.sort(key=lambda r: (order.index(r.key[0]), r.key))
        md = table(rows)
        print(md)
        elapsed = time.monotonic() - started
        header = f"""# devicegraph: attack results

Produced by `bash benches/security/run.sh` (`benches/security/attacks.py`); see
SECURITY.md for what each limit does. Do not edit by hand: rerun.

- tree: {git_describe()}; {os.cpu_count()} CPUs; run took {elapsed:.0f} s
- `devicegraph-sim` with {SIM_DEVICES:,} devices, no faults; `devicegraph` in thingspace
  mode against it with `config/default.toml` defaults except: two API keys (`tenant-a`,
  `tenant-b`, both scoped to `{ACCOUNT}`), introspection and GraphiQL off
- requests send `Accept: {ACCEPT}` (request errors are 400) and
  `{COST_HEADER}: 1` (the gateway's own count of upstream calls in `extensions.cost`)
- "upstream calls": requests the simulator received during the row (`/_sim/stats`,
  all endpoints, token and login included); "`/healthz`": worst latency of a poll every
  50 ms on a fresh connection during the row (n = polls)
- rows ran in this order (the RSS column follows it): {ran}

"""
        Path(args.out).write_text(header + md)
        log(f"wrote {args.out}")
        return 0
    finally:
        if gw:
            gw.stop()
        if sim:
            sim.stop()
        if args.keep_logs:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
