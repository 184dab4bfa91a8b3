"""``wsdoctor apply --fix ID --yes`` over SSH on every broken lab scenario whose fix is a config change: the check
that proposed it passes afterwards and nothing else got worse (apply's live verify), and a real client now gets
what the scenario took away from it (the independent witness).

The six labs are started, fixed and diagnosed concurrently (one module fixture), then each test asserts on its
scenario; each lab is the module's own (it is changed).
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.apply.helpers import real_client, ssh_target, wait_transport
from tests.lab.helpers import open_packet, ssl_context
from wsdoctor.apply.command import ApplyRequest, execute
from wsdoctor.apply.transaction import Outcome
from wsdoctor.diagnose import run_headless
from wsdoctor.lab import Lab
from wsdoctor.report import Finding, Status

pytestmark = pytest.mark.lab

FIXES = {
    "no-rewrite": "route",
    "short-timeout": "timeout",
    "no-sticky": "sticky",
    "no-upgrade": "upgrade",
    "header-inheritance": "upgrade",
    "cors-duplicate": "cors",
    "literal-upgrade": "upgrade",
}
SCENARIO_FIXES = FIXES


@dataclass
class Fixed:
    lab: Lab
    check: str
    before: dict[str, Finding]
    outcome: Outcome
    original: bytes


def _fix(lab: Lab, check: str, backups: Path) -> Fixed:
    target = ssh_target(lab)
    # The diagnosis the fix comes from is the test's own (apply takes it as the TUI hands it over; the CLI's
    # fresh diagnosis is exercised in test_apply_host.py): the same findings, one diagnosis less per lab.
    before = {f.id: f for f in run_headless(ssh_target(lab)).findings}
    original = Path(lab.info()["nginx_conf"]).read_bytes()
    outcome = execute(
        ApplyRequest(target=target, fix=[check], yes=True, backup_dir=str(backups), before=before)
    )
    return Fixed(lab, check, before, outcome, original)


def _lab(lab_factory, scenario: str) -> Lab:  # type: ignore[no-untyped-def]
    if scenario == "no-sticky":
        # A polling client's disconnect waits for its pending long poll, which the server holds for up to
        # pingInterval: a short one keeps the test short (the fix does not depend on it).
        return lab_factory.fresh(scenario, ping_interval=2.0, ping_timeout=2.0)
    return lab_factory.fresh(scenario)


@pytest.fixture(scope="module")
def fixed(lab_factory, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fixed]:
    base = tmp_path_factory.mktemp("fix-backups")
    with ThreadPoolExecutor(max_workers=3) as pool:  # a small machine has two cores
        labs = dict(
            zip(
                SCENARIO_FIXES,
                pool.map(_lab, [lab_factory] * len(SCENARIO_FIXES), SCENARIO_FIXES),
                strict=True,
            )
        )
        jobs = {s: pool.submit(_fix, labs[s], c, base / s) for s, c in SCENARIO_FIXES.items()}
        return {s: job.result() for s, job in jobs.items()}


@pytest.mark.parametrize("scenario", list(SCENARIO_FIXES))
def test_the_fix_is_applied_verified_and_nothing_else_got_worse(
    scenario: str, fixed: dict[str, Fixed]
) -> None:
    r = fixed[scenario]
    out = r.outcome
    steps = [(s.step, s.ok) for s in out.steps]
    assert out.applied and not out.rolled_back, out.to_json()
    assert steps == [(n, True) for n in ("preflight", "lock", "backup", "write", "test", "reload", "verify")]
    assert out.exit_code() == 0 and out.backup
    assert r.before[r.check].status in (Status.FAIL, Status.WARN)
    # apply's own verify re-diagnosed the lab live: the check passes, no other got worse (the real clients
    # below are the independent witnesses of each fix).
    verify = out.steps[-1].detail
    assert f"live: {r.check} {r.before[r.check].status.value} → pass; no other check got worse" in verify
    # The file on disk is the original with exactly the diff applied, and the backup holds the original.
    conf = Path(r.lab.info()["nginx_conf"])
    assert conf.read_bytes() != r.original
    assert f"+++ b/{str(conf).lstrip('/')}" in out.diff
    manifest = json.loads(
        (Path(out.steps[2].detail.split(" in ", 1)[1].split(":", 1)[0]) / "manifest.json").read_text()
    )
    (entry,) = manifest["files"]
    assert entry["path"] == str(conf) and entry["existed"]
    copy = Path(out.steps[2].detail.split(" in ", 1)[1].split(":", 1)[0]) / entry["copy"]
    assert copy.read_bytes() == r.original


async def test_no_rewrite_a_real_client_connects(fixed: dict[str, Fixed]) -> None:
    lab = fixed["no-rewrite"].lab
    async with real_client(lab.url, lab.path, lab.token, lab.ca_file, ["polling", "websocket"]) as client:
        await wait_transport(client, "websocket")
        assert (await client.call("whoami", timeout=5)).startswith("backend-")


async def test_no_upgrade_a_real_client_upgrades_to_websocket(fixed: dict[str, Fixed]) -> None:
    lab = fixed["no-upgrade"].lab
    async with real_client(lab.url, lab.path, lab.token, lab.ca_file, ["websocket"]) as client:
        assert client.transport() == "websocket"
        assert (await client.call("whoami", timeout=5)).startswith("backend-")


async def test_no_sticky_a_polling_session_stays_on_one_backend(fixed: dict[str, Fixed]) -> None:
    lab = fixed["no-sticky"].lab
    async with real_client(lab.url, lab.path, lab.token, lab.ca_file, ["polling"]) as client:
        first = await client.call("whoami", timeout=5)
        for _ in range(6):  # round robin over three backends would have moved it (400 Invalid session)
            assert await client.call("whoami", timeout=5) == first
        assert client.transport() == "polling" and client.connected


async def test_short_timeout_an_idle_client_outlives_the_old_timeout(fixed: dict[str, Fixed]) -> None:
    lab = fixed["short-timeout"].lab  # proxy_read_timeout was 3 s, pings every 5 s
    async with real_client(lab.url, lab.path, lab.token, lab.ca_file, ["websocket"]) as client:
        instance = await client.call("whoami", timeout=5)
        await asyncio.sleep(6.5)  # idle past the old 3 s and past one ping
        assert client.connected and await client.call("whoami", timeout=5) == instance


async def test_header_inheritance_the_backend_sees_host_and_forwarded_headers(
    fixed: dict[str, Fixed],
) -> None:
    lab = fixed["header-inheritance"].lab
    async with real_client(lab.url, lab.path, lab.token, lab.ca_file, ["websocket"]) as client:
        headers = await client.call("headers", timeout=5)
    assert headers["host"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "https" and headers["x-forwarded-for"] == "127.0.0.1"


async def test_cors_duplicate_one_allow_origin_header(fixed: dict[str, Fixed]) -> None:
    lab = fixed["cors-duplicate"].lab
    async with httpx.AsyncClient(verify=ssl_context(lab), timeout=5) as http:
        r = await http.get(
            f"{lab.public_base}{lab.path}/",
            params={"EIO": "4", "transport": "polling"},
            headers={"Origin": lab.public_base},
        )
    assert r.status_code == 200 and open_packet(r.text)["sid"]
    assert r.headers.get_list("access-control-allow-origin") == [lab.public_base]


async def test_literal_upgrade_a_default_client_connects_by_polling_first(fixed: dict[str, Fixed]) -> None:
    assert fixed["literal-upgrade"].outcome.applied, fixed["literal-upgrade"].outcome.to_json()
    lab = fixed["literal-upgrade"].lab
    async with real_client(lab.url, lab.path, lab.token, lab.ca_file, ["polling", "websocket"]) as client:
        await wait_transport(client, "websocket")
