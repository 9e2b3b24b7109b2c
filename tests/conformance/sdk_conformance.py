#!/usr/bin/env python3
"""SDK conformance: drive the devicegraph simulator with Verizon's own Python SDK.

The public `sdksio-verizon-apis-sdk` package (generated from Verizon's API
definitions) is a ThingSpace client nobody on this project wrote. If it can
obtain both tokens and read all six endpoints from the simulator, the
simulator speaks the wire format real clients expect, not just the one our own
Rust client happens to produce.

Usage:
    sdk_conformance.py BASE_URL [CATALOG_URL]

    BASE_URL     the simulator's API base, e.g. http://127.0.0.1:9090/api
                 (the equivalent of https://thingspace.verizon.com/api)
    CATALOG_URL  the simulator's catalog, default: BASE_URL's origin + /_sim/catalog

Prints one `PASS`/`FAIL`/`NOTE` line per check and exits 0 only when every
check passed. Tokens are secrets: only their lengths are printed.

Where the SDK itself cannot read what ThingSpace documents (see UPSTREAM.md),
the script works around the SDK, never the simulator, and says so in a NOTE
line:
  * The SDK parses timestamps with `dateutil`, which rejects Go's default
    format (`2022-01-26 03:45:01.608 +0000 UTC`, used throughout the device
    details seed) and the documented `"N/A"` for `lastConnectionTime`. The
    script wraps the SDK's RFC 3339 parser to accept both and counts the uses.
  * The SDK's environments are fixed host tables; the script rebases the
    production table (`https://thingspace.verizon.com/api/...`) onto BASE_URL,
    so every request goes to exactly the path the SDK would use in production.
"""

import collections
import json
import re
import sys
import urllib.parse
import urllib.request

import dateutil.parser
from apimatic_core.utilities.api_helper import ApiHelper
from verizon.configuration import Configuration, Environment
from verizon.exceptions.api_exception import APIException
from verizon.http.auth.thingspace_oauth import ThingspaceOauthCredentials
from verizon.http.auth.vz_m2m_token import VZM2mTokenCredentials
from verizon.models.device_id import DeviceId
from verizon.models.device_imei import DeviceIMEI
from verizon.models.device_provisioning_history_list_request import (
    DeviceProvisioningHistoryListRequest,
)
from verizon.models.log_in_request import LogInRequest
from verizon.verizon_client import VerizonClient

CLIENT_ID = "sim-client"
CLIENT_SECRET = "sim-secret"
USERNAME = "sim-user"
PASSWORD = "sim-password"
PRODUCTION_BASE = "https://thingspace.verizon.com/api"
HTTP_TIMEOUT_SECS = 30
# Bounds so a broken pagination fails the check instead of hanging CI.
MAX_CAMPAIGN_PAGES = 50
MAX_ACCOUNT_PAGES = 200
MAX_PROVISIONING_PAGES = 50
# A sample device may legitimately have no check-ins or upgrades; try a few.
MAX_DEVICES_TRIED = 8

# --- SDK workaround: lenient timestamp parsing ---------------------------------

LENIENT_PARSES = collections.Counter()
_GO_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?) ([+-]\d{4}) [A-Za-z]+$"
)
_sdk_parse = ApiHelper.RFC3339DateTime.from_value.__func__


def _lenient_from_value(cls, value):
    """The SDK's RFC 3339 parser, plus the two shapes ThingSpace also sends."""
    try:
        return _sdk_parse(cls, value)
    except (ValueError, OverflowError):
        if value == "N/A":
            LENIENT_PARSES["N/A"] += 1
            return cls(None, value)
        match = _GO_TIME.match(value) if isinstance(value, str) else None
        if match:
            LENIENT_PARSES["Go time format"] += 1
            return _sdk_parse(cls, f"{match[1]}T{match[2]}{match[3]}")
        raise


ApiHelper.RFC3339DateTime.from_value = classmethod(_lenient_from_value)


# --- Reporting ------------------------------------------------------------------


class Report:
    """Collects check results; one printed line per check."""

    def __init__(self):
        self.failures = 0

    def check(self, name, ok, detail):
        print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if not ok:
            self.failures += 1
        return ok

    def fail(self, name, detail):
        return self.check(name, False, detail)

    @staticmethod
    def note(name, detail):
        print(f"NOTE {name}: {detail}", flush=True)


def describe_error(err):
    """A one-line description of an SDK exception, with the upstream error code."""
    if isinstance(err, APIException):
        code = getattr(err, "error_code", None)
        body = (err.response.text or "")[:300] if err.response else ""
        return (
            f"{type(err).__name__} HTTP {err.response_code}"
            f" errorCode={code!r} body={body!r}"
        )
    return f"{type(err).__name__}: {err}"


# --- SDK setup ------------------------------------------------------------------


class SimConfiguration(Configuration):
    """The SDK's configuration with the production host table rebased onto BASE_URL."""

    def __init__(self, base_url, **kwargs):
        self._sim_base = base_url.rstrip("/")
        super().__init__(**kwargs)

    def get_base_uri(self, server=None):
        production = self.environments[Environment.PRODUCTION][server]
        if not production.startswith(PRODUCTION_BASE):
            raise ValueError(f"server {server} is not under {PRODUCTION_BASE}")
        return self._sim_base + production[len(PRODUCTION_BASE):]


def make_client(base_url, oauth_token=None, session_token=None):
    """An SDK client; without an OAuth token it fetches one on first use."""
    vz_m2m = VZM2mTokenCredentials(vz_m2m_token=session_token) if session_token else None
    config = SimConfiguration(
        base_url,
        timeout=HTTP_TIMEOUT_SECS,
        max_retries=0,
        environment=Environment.PRODUCTION,
        thingspace_oauth_credentials=ThingspaceOauthCredentials(
            oauth_client_id=CLIENT_ID,
            oauth_client_secret=CLIENT_SECRET,
            oauth_token=oauth_token,
        ),
        vz_m2m_token_credentials=vz_m2m,
    )
    return VerizonClient(config=config)


def fetch_json(url):
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECS) as resp:
        return json.load(resp)


class Targets:
    """What to query, chosen from the simulator's catalog."""

    def __init__(self, catalog):
        # The smallest campaign over one page (1,000 devices), so the SDK pages
        # at least once; else the smallest non-empty one.
        campaigns = [c for c in catalog.get("campaigns", []) if int(c.get("devices", 0)) > 0]
        if not campaigns:
            raise RuntimeError("catalog lists no non-empty campaign")
        paged = [c for c in campaigns if 1000 < int(c["devices"]) <= 20000]
        self.campaign = min(paged or campaigns, key=lambda c: int(c["devices"]))
        self.account = self.campaign["account"]
        # The account with the most devices, so its list spans the most pages.
        sizes = {a: int(n) for a, n in (catalog.get("accountDevices") or {}).items()}
        self.listed_account = max(sizes, key=sizes.get) if sizes else self.account
        self.account_devices = sizes.get(self.listed_account, 0)
        self.account_page = int(catalog.get("pageSizes", {}).get("accountDevices", 1000))
        samples = catalog.get("sampleImeis", {})
        self.imeis = list(samples.get(self.account, []))
        if not self.imeis:
            raise RuntimeError(f"catalog lists no sample IMEI for account {self.account}")
        # Devices whose provisioning history spans several 202 pages, if listed
        # (any account: the request names only the device).
        boundary = catalog.get("provisioningBoundaryDevices", {})
        self.paged_provisioning = [i for imeis in boundary.values() for i in imeis]
        self.provisioning_imeis = self.paged_provisioning + self.imeis
        window = catalog.get("provisioningWindow") or {}
        self.earliest = window.get("earliest", "2000-01-01T00:00:00Z")
        self.latest = window.get("latest", "2099-12-31T23:59:59Z")
        unknown = catalog.get("unknownImeis") or []
        # 000000000000000 is Luhn-valid and never allocated by the simulator.
        self.unknown_imei = unknown[0] if unknown else "000000000000000"


# --- The checks -----------------------------------------------------------------


def check_tokens(report, base_url):
    """OAuth token, then session login; returns a client carrying both, or None."""
    bootstrap = make_client(base_url)
    oauth = bootstrap.auth_managers["thingspace_oauth"]
    try:
        token = oauth.fetch_token()
    except Exception as err:  # noqa: BLE001 - any failure here is the finding
        report.fail("oauth_token", describe_error(err))
        return None
    ok = (
        bool(getattr(token, "access_token", None))
        and str(getattr(token, "token_type", "")).lower() == "bearer"
        and int(getattr(token, "expires_in", 0) or 0) > 0
    )
    report.check(
        "oauth_token",
        ok,
        f"POST /ts/v1/oauth2/token -> token_type={getattr(token, 'token_type', None)!r}"
        f" expires_in={getattr(token, 'expires_in', None)!r}"
        f" access_token length={len(getattr(token, 'access_token', '') or '')}",
    )
    if not ok:
        return None

    with_oauth = make_client(base_url, oauth_token=token)
    try:
        login = with_oauth.session_management.start_connectivity_management_session(
            LogInRequest(username=USERNAME, password=PASSWORD)
        )
    except Exception as err:  # noqa: BLE001
        report.fail("session_login", describe_error(err))
        return None
    session = getattr(login.body, "session_token", None)
    ok = login.status_code == 200 and bool(session)
    report.check(
        "session_login",
        ok,
        f"POST /m2m/v1/session/login -> HTTP {login.status_code}"
        f" sessionToken length={len(session or '')}",
    )
    if not ok:
        return None
    return make_client(base_url, oauth_token=token, session_token=session)


def first_device_with(report, name, imeis, call):
    """Run `call(imei)` over sample devices until one returns a non-empty list."""
    tried = []
    for imei in imeis[:MAX_DEVICES_TRIED]:
        try:
            resp = call(imei)
        except Exception as err:  # noqa: BLE001
            return report.fail(name, f"IMEI {imei}: {describe_error(err)}")
        items = resp.body if isinstance(resp.body, list) else None
        if items is None:
            return report.fail(name, f"IMEI {imei}: body is not a list: {resp.text[:200]!r}")
        tried.append(imei)
        if items:
            return imei, items, resp
    return report.fail(name, f"empty list for every IMEI tried: {tried}")


def check_check_ins(report, client, account, imeis):
    api = client.server_logging
    found = first_device_with(
        report,
        "check_in_history",
        imeis,
        lambda imei: api.get_device_check_in_history(account, imei),
    )
    if not isinstance(found, tuple):
        return
    imei, items, _ = found
    echoed = all(i is not None and i.device_id == imei for i in items)
    timed = all(i.time_completed is not None for i in items)
    report.check(
        "check_in_history",
        echoed and timed,
        f"GET /fota/v2/logging/{account}/devices/{imei}/checkInHistory -> {len(items)}"
        f" check-ins, deviceId echoed={echoed}, every timeCompleted parsed={timed}",
    )


def check_upgrades(report, client, account, imeis):
    api = client.software_management_reports_v3
    found = first_device_with(
        report,
        "upgrade_history",
        imeis,
        lambda imei: api.get_device_firmware_upgrade_history(account, imei),
    )
    if not isinstance(found, tuple):
        return
    imei, items, resp = found
    echoed = all(u is not None and u.device_id == imei for u in items)
    complete = all(u.status and u.start_date for u in items)
    # UPSTREAM.md: the campaign is `campaignId` (seed, SDK) or `id` (reference
    # table). The SDK's model only knows `campaignId`, so look at the raw body.
    raw = json.loads(resp.text)
    via_id = sum(1 for r in raw if not r.get("campaignId") and r.get("id"))
    campaigns = all(r.get("campaignId") or r.get("id") for r in raw)
    report.check(
        "upgrade_history",
        echoed and complete and campaigns,
        f"GET /fota/v3/reports/{account}/devices/{imei} -> {len(items)} upgrades,"
        f" deviceId echoed={echoed}, status/startDate present={complete},"
        f" campaign named={campaigns}",
    )
    if via_id:
        report.note(
            "sdk_gap",
            f"{via_id} upgrade record(s) name the campaign as `id`; the SDK's model"
            " reads only `campaignId` and leaves campaign_id empty for them",
        )


def check_campaign(report, client, account, campaign):
    """Walk every page of the campaign report the way the SDK's caller would."""
    api = client.software_management_reports_v3
    campaign_id = str(campaign["id"])
    expected = int(campaign["devices"])
    devices, pages, cursor, total = [], 0, "0", None
    while True:
        pages += 1
        if pages > MAX_CAMPAIGN_PAGES:
            return report.fail("campaign_devices", f"still hasMoreData after {pages - 1} pages")
        try:
            resp = api.get_campaign_device_status(account, campaign_id, last_seen_device_id=cursor)
        except Exception as err:  # noqa: BLE001
            return report.fail("campaign_devices", f"page {pages}: {describe_error(err)}")
        page = resp.body
        batch = [d.device_id for d in (page.device_list or [])]
        devices.extend(batch)
        total = getattr(page, "total_device", None)
        if not page.has_more_data:
            break
        next_cursor = str(getattr(page, "last_seen_device_id", "") or "")
        if not batch or next_cursor in ("", "0", cursor):
            return report.fail(
                "campaign_devices",
                f"page {pages}: hasMoreData with {len(batch)} devices and cursor {next_cursor!r}",
            )
        cursor = next_cursor
    ordered = devices == sorted(devices) and len(set(devices)) == len(devices)
    total_ok = total is not None and int(total) == len(devices)
    report.check(
        "campaign_devices",
        len(devices) == expected and ordered and total_ok,
        f"GET /fota/v3/reports/{account}/campaigns/{campaign_id}/devices -> {len(devices)}"
        f" devices in {pages} pages (catalog says {expected}, totalDevice={total!r}),"
        f" ascending and unique={ordered}",
    )
    # The SDK makes the cursor optional and leaves it out when the caller does;
    # the first page must then be the same as with lastSeenDeviceId=0.
    try:
        first = api.get_campaign_device_status(account, campaign_id).body
        ids = [d.device_id for d in (first.device_list or [])]
        report.check(
            "campaign_devices(no cursor)",
            bool(ids) and ids == devices[: len(ids)],
            f"GET .../campaigns/{campaign_id}/devices without lastSeenDeviceId -> {len(ids)}"
            " devices, same first page as lastSeenDeviceId=0",
        )
    except Exception as err:  # noqa: BLE001
        report.fail("campaign_devices(no cursor)", describe_error(err))
    return devices


def account_pages(api, account, protocol):
    """Every page of the account's device list through the SDK, following
    lastSeenDeviceId from the first page (no cursor, as the SDK's caller starts).
    `protocol` is passed as given: the SDK's own default is LWM2M, None leaves the
    parameter out."""
    devices, pages, cursor = [], 0, None
    while True:
        pages += 1
        if pages > MAX_ACCOUNT_PAGES:
            raise RuntimeError(f"still hasMoreData after {pages - 1} pages")
        resp = api.get_account_device_information(
            account, last_seen_device_id=cursor, protocol=protocol
        )
        page = resp.body
        if page.account_name != account:
            raise RuntimeError(f"page {pages}: accountName {page.account_name!r}")
        batch = [d for d in (page.device_list or []) if d is not None]
        devices.extend(batch)
        if not page.has_more_data:
            return devices, pages, page.max_page_size
        next_cursor = str(getattr(page, "last_seen_device_id", "") or "")
        if not batch or next_cursor in ("", "0", cursor):
            raise RuntimeError(
                f"page {pages}: hasMoreData with {len(batch)} devices and cursor {next_cursor!r}"
            )
        cursor = next_cursor


def check_account_devices(report, client, targets):
    """Walk every page of the account's device list (GET /fota/v3/devices/{acc}):
    every protocol, the SDK's default protocol, and the other protocol."""
    api = client.account_devices
    account, expected = targets.listed_account, targets.account_devices
    try:
        everything, pages, max_page = account_pages(api, account, None)
        lwm2m, _, _ = account_pages(api, account, "LWM2M")
        http, _, _ = account_pages(api, account, "HTTP")
    except APIException as err:
        return report.fail("account_devices", describe_error(err))
    ids = [d.device_id for d in everything]
    ordered = ids == sorted(ids) and len(set(ids)) == len(ids)
    described = all(d.make and d.model and d.firmware and d.protocol for d in everything)
    expected_pages = max(1, -(-expected // targets.account_page))
    report.check(
        "account_devices",
        len(ids) == expected and ordered and described and pages == expected_pages
        and max_page == targets.account_page,
        f"GET /fota/v3/devices/{account} -> {len(ids)} devices in {pages} pages"
        f" (catalog says {expected}, maxPageSize={max_page}), ascending and unique={ordered},"
        f" make/model/firmware/protocol present={described}",
    )
    by_protocol = all(d.protocol == "LWM2M" for d in lwm2m) and all(
        d.protocol == "HTTP" for d in http
    )
    split = sorted(d.device_id for d in lwm2m + http) == ids
    report.check(
        "account_devices(protocol)",
        bool(lwm2m or http) and by_protocol and split,
        f"protocol=LWM2M -> {len(lwm2m)} devices, protocol=HTTP -> {len(http)},"
        f" each of its protocol={by_protocol}, together the whole list={split}",
    )
    # The SDK's own default (protocol=LWM2M when the caller names none).
    try:
        first = api.get_account_device_information(account).body
        got = [d.device_id for d in (first.device_list or [])]
        want = [d.device_id for d in lwm2m][: len(got)]
        report.check(
            "account_devices(SDK default)",
            bool(got) and got == want,
            f"GET /fota/v3/devices/{account} with the SDK's defaults -> {len(got)}"
            " devices, the first LWM2M page",
        )
    except APIException as err:
        report.fail("account_devices(SDK default)", describe_error(err))
    return ids


def check_device_details(report, client, account, imeis):
    api = client.account_devices
    wanted = sorted(set(imeis))
    try:
        resp = api.list_account_devices_information(account, DeviceIMEI(device_list=wanted))
    except Exception as err:  # noqa: BLE001
        return report.fail("device_details", describe_error(err))
    body = resp.body
    got = {d.device_id: d for d in (body.device_list or []) if d is not None}
    missing = [i for i in wanted if i not in got]
    described = all(d.make and d.model and d.firmware for d in got.values())
    report.check(
        "device_details",
        not missing and described and body.account_name == account,
        f"POST /fota/v3/devices/{account} with {len(wanted)} IMEIs -> accountName="
        f"{body.account_name!r} deviceCount={body.device_count!r} returned={len(got)}"
        f" missing={missing} make/model/firmware present={described}",
    )


def provisioning_pages(api, imei, kind, earliest, latest):
    """Every provisioning record, following status 202 and dropping boundary repeats."""
    records, pages, statuses = [], 0, []
    while True:
        pages += 1
        if pages > MAX_PROVISIONING_PAGES:
            raise RuntimeError(f"still status 202 after {pages - 1} pages")
        request = DeviceProvisioningHistoryListRequest(
            device_id=DeviceId(id=imei, kind=kind), earliest=earliest, latest=latest
        )
        resp = api.list_devices_provisioning_history(request)
        statuses.append(resp.status_code)
        # The records as raw JSON: the SDK models drop nothing we compare here.
        batch = json.loads(resp.text).get("provisioningHistory") or []
        if records and batch:
            # The page restarts at the last timestamp seen: drop exactly the
            # records already held at that timestamp, keep distinct ones.
            boundary = records[-1]["occurredAt"]
            held = collections.Counter(
                json.dumps(r, sort_keys=True) for r in records if r["occurredAt"] == boundary
            )
            fresh = []
            for rec in batch:
                key = json.dumps(rec, sort_keys=True)
                if rec.get("occurredAt") == boundary and held[key] > 0:
                    held[key] -= 1
                else:
                    fresh.append(rec)
            batch = fresh
        records.extend(batch)
        more = getattr(resp.body, "has_more_data", False)
        if resp.status_code != 202 and not more:
            return records, pages, statuses
        if resp.status_code != 202 or not more or not batch:
            raise RuntimeError(
                f"page {pages}: HTTP {resp.status_code} hasMoreData={more} with"
                f" {len(batch)} new records"
            )
        earliest = records[-1]["occurredAt"]


def check_provisioning(report, client, targets):
    api = client.device_management
    candidates = targets.provisioning_imeis[:MAX_DEVICES_TRIED]
    for kind in ("imei", "IMEI"):
        name = f"provisioning_history(kind={kind})"
        for imei in candidates:
            try:
                records, pages, statuses = provisioning_pages(
                    api, imei, kind, targets.earliest, targets.latest
                )
            except APIException as err:
                report.fail(name, f"IMEI {imei}: {describe_error(err)}")
                break
            except Exception as err:  # noqa: BLE001
                report.fail(name, f"IMEI {imei}: {type(err).__name__}: {err}")
                break
            if not records:
                continue
            complete = all(r.get("occurredAt") and r.get("eventType") for r in records)
            times = [dateutil.parser.isoparse(r["occurredAt"]) for r in records]
            ordered = times == sorted(times)
            # A device the catalog lists as spanning pages must have come in 202s.
            paged = imei not in targets.paged_provisioning or 202 in statuses
            report.check(
                name,
                complete and ordered and paged,
                f"POST /m2m/v1/devices/history/actions/list for {imei} -> {len(records)}"
                f" records in {pages} pages (HTTP {statuses}), occurredAt/eventType"
                f" present={complete}, oldest first={ordered}, paged as listed={paged}",
            )
            break
        else:
            report.fail(name, f"no provisioning records for any of {candidates}")


def check_error_shape(report, client, account, unknown):
    """An unknown device must come back as the documented 400 the SDK decodes."""
    try:
        client.software_management_reports_v3.get_device_firmware_upgrade_history(
            account, unknown
        )
    except APIException as err:
        code = getattr(err, "error_code", None)
        return report.check(
            "error_shape",
            err.response_code == 400 and bool(code),
            f"unknown IMEI -> {describe_error(err)}",
        )
    except Exception as err:  # noqa: BLE001
        return report.fail("error_shape", f"unknown IMEI -> {type(err).__name__}: {err}")
    return report.fail("error_shape", "unknown IMEI was answered with success")


def check_stats(report, stats_url):
    """The simulator counted what the SDK sent: one token, one login, every endpoint."""
    try:
        calls = fetch_json(stats_url).get("calls", {})
    except Exception as err:  # noqa: BLE001
        return report.fail("sim_stats", f"GET {stats_url}: {err}")
    data = [
        "check_in_history",
        "upgrade_history",
        "campaign_devices",
        "device_details",
        "provisioning_history",
        "account_devices",
    ]
    ok = (
        calls.get("oauth_token") == 1
        and calls.get("session_login") == 1
        and all(int(calls.get(k, 0)) >= 1 for k in data)
    )
    return report.check("sim_stats", ok, f"calls={json.dumps(calls, sort_keys=True)}")


def guarded(report, name, check, *args):
    """Run one check; an unexpected exception (e.g. a body the SDK cannot
    model) fails that check with its description instead of ending the run."""
    try:
        return check(*args)
    except Exception as err:  # noqa: BLE001
        return report.fail(name, f"unexpected {type(err).__name__}: {err}")


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    base_url = argv[1].rstrip("/")
    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(base_url))
    catalog_url = argv[2] if len(argv) == 3 else origin + "/_sim/catalog"
    stats_url = catalog_url.rsplit("/", 1)[0] + "/stats"
    report = Report()

    try:
        targets = Targets(fetch_json(catalog_url))
    except Exception as err:  # noqa: BLE001
        report.fail("catalog", f"GET {catalog_url}: {type(err).__name__}: {err}")
        return 1
    # Count only the calls this run makes; an absent reset is not fatal here.
    try:
        reset = urllib.request.Request(catalog_url.rsplit("/", 1)[0] + "/reset", method="POST")
        urllib.request.urlopen(reset, timeout=HTTP_TIMEOUT_SECS).close()
    except Exception as err:  # noqa: BLE001
        report.note("sim_reset", f"could not reset stats: {err}")
    account, campaign, imeis = targets.account, targets.campaign, targets.imeis
    report.check(
        "catalog",
        True,
        f"account {account}, campaign {campaign['id']} ({campaign['devices']} devices),"
        f" {len(imeis)} sample IMEIs, {len(targets.paged_provisioning)} multi-page"
        " provisioning devices",
    )

    client = check_tokens(report, base_url)
    if client is None:
        print(f"FAILED: {report.failures} check(s); cannot continue without both tokens")
        return 1
    guarded(report, "check_in_history", check_check_ins, report, client, account, imeis)
    guarded(report, "upgrade_history", check_upgrades, report, client, account, imeis)
    campaign_imeis = guarded(
        report, "campaign_devices", check_campaign, report, client, account, campaign
    )
    if not isinstance(campaign_imeis, list):
        campaign_imeis = []
    guarded(
        report,
        "device_details",
        check_device_details,
        report,
        client,
        account,
        imeis[:3] + campaign_imeis[:3],
    )
    guarded(report, "provisioning_history", check_provisioning, report, client, targets)
    guarded(report, "account_devices", check_account_devices, report, client, targets)
    guarded(
        report, "error_shape", check_error_shape, report, client, account, targets.unknown_imei
    )
    guarded(report, "sim_stats", check_stats, report, stats_url)

    for shape, count in sorted(LENIENT_PARSES.items()):
        report.note(
            "sdk_workaround",
            f"{count} timestamps in {shape!r} shape, which the SDK's parser rejects,"
            " were parsed leniently",
        )
    if report.failures:
        print(f"FAILED: {report.failures} check(s)")
        return 1
    print("OK: the Verizon SDK obtained both tokens and read all six endpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
