"""Faults during a live run, against the real lab over SSH: a backend killed, a backend stopped (SIGSTOP) and
resumed, nginx reloaded, nginx killed, the SSH session dropped.

Each fault is injected at a state of the run, never after a delay: the run holds a tunnel (``--hold``) so
there is a "during", and the fault goes in once the state it needs is reached (the config is in, the
backends are probed, the held tunnel is through nginx to a backend).  For each: the run ends in bounded
time, without a traceback, with a verdict for every check, and with an explanation its own evidence
supports.  Where today's wording contradicts the evidence the assertion is a strict xfail that says how
(the wording belongs to the probes and checks; the faults and the remote side are tested here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from wsdoctor.demo import lab_target
from wsdoctor.diagnose import Diagnosis
from wsdoctor.facts import Fact
from wsdoctor.remote.session import RemoteSession
from wsdoctor.report import CHECK_IDS, Finding, Report, Status

HOLD = 4.0
BOUND = 40.0  # seconds a faulty run may take at most (hold, probe timeouts, slack for a loaded machine)
STATE_WAIT = 30.0

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@dataclasses.dataclass
class Outcome:
    report: Report
    findings: dict[str, Finding]
    elapsed: float
    injected: bool
    text: str


def _established(port: int) -> bool:
    """A TCP connection is established on local port PORT (nginx's upstream connection to a backend)."""
    done = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return bool(done.stdout.strip())


def _tunnelled(port: int) -> bool:
    """The proxy host's sshd holds a TCP connection to local port PORT: a backend probe's tunnel is open."""
    done = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return '"sshd"' in done.stdout


def _backend_ports(lab: Any) -> list[int]:
    return [int(b.rsplit(":", 1)[1]) for b in lab.info()["backends"]]


def _holding_backend(lab: Any) -> int | None:
    """The index of the backend the held tunnel goes to (the only one with an open upstream connection)."""
    busy = [i for i, port in enumerate(_backend_ports(lab)) if _established(port)]
    return busy[0] if len(busy) == 1 else None


def _run(
    lab: Any,
    *,
    hold: float | None = HOLD,
    ready: Callable[[Diagnosis], bool] | None = None,
    inject: Callable[[], None] | None = None,
) -> Outcome:
    """One remote check of LAB; INJECT runs once READY(diagnosis) holds (polled: the state, not a delay)."""
    info = lab.info()
    target = dataclasses.replace(lab_target(info), backend_log=info["backend_log"], timeout=5.0, hold=hold)
    injected = False

    async def fault(diagnosis: Diagnosis) -> None:
        nonlocal injected
        deadline = time.monotonic() + STATE_WAIT
        while not ready(diagnosis):  # type: ignore[misc]
            assert time.monotonic() < deadline, (
                f"the run never reached the state for the fault: {diagnosis.facts.pending}"
            )
            await asyncio.sleep(0.02)
        inject()  # type: ignore[misc]
        injected = True

    async def main() -> Diagnosis:
        with RemoteSession(target) as session:
            diagnosis = Diagnosis(target, session)
            watcher = asyncio.create_task(fault(diagnosis)) if inject is not None else None
            try:
                await asyncio.wait_for(diagnosis.run(), BOUND)
            finally:
                if watcher is not None:
                    if not watcher.done():
                        watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)
            if watcher is not None and not watcher.cancelled() and watcher.exception() is not None:
                raise watcher.exception()  # type: ignore[misc]
            return diagnosis

    started = time.monotonic()
    diagnosis = asyncio.run(main())
    elapsed = time.monotonic() - started
    report = diagnosis.report()
    text = report.to_text(color=False)
    return Outcome(report, {f.id: f for f in report.findings}, elapsed, injected, text)


def _evidence(f: Finding, kind: str | None = None) -> str:
    return "\n".join(f"{e.where}\n{e.text}" for e in f.evidence if kind is None or e.kind == kind)


def _assert_sound(out: Outcome) -> None:
    """Bounded, no traceback anywhere, a verdict for every check, no gatherer that crashed."""
    assert out.elapsed < BOUND, out.elapsed
    everything = out.text + out.report.to_json() + out.report.to_markdown()
    assert "Traceback" not in everything
    for note in out.report.notes:
        assert not re.search(r"failed: \w+(Error|Exception)\b", note), note
    assert {f.status for f in out.findings.values()} <= set(Status)
    assert len(out.findings) == len(CHECK_IDS), sorted(out.findings)


def _hold_through(lab: Any) -> Callable[[Diagnosis], bool]:
    """The state for a fault during the hold: config in, backends probed, the held tunnel through nginx."""

    def ready(d: Diagnosis) -> bool:
        pending = d.facts.pending
        return (
            Fact.CONFIG not in pending
            and Fact.HANDSHAKE_BACKENDS not in pending
            and Fact.HOLD in pending
            and _holding_backend(lab) is not None
        )

    return ready


@pytest.fixture(scope="module")
def survivor_lab(lab_factory) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A lab of this module's own for the faults it survives (stopped and resumed, reloaded, SSH dropped)."""
    yield lab_factory.fresh("healthy")


# --- a backend killed mid-run --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def killed_backend(lab_factory) -> tuple[Any, Outcome, int]:  # type: ignore[no-untyped-def]
    lab = lab_factory.fresh("healthy")
    box: list[int] = []

    def kill() -> None:
        index = _holding_backend(lab)
        assert index is not None
        box.append(index)
        os.kill(lab.info()["pids"][f"backend-{index}"], signal.SIGKILL)

    out = _run(lab, ready=_hold_through(lab), inject=kill)
    return lab, out, box[0]


def test_backend_killed_mid_hold_fails_timeout_with_the_measured_drop(killed_backend) -> None:  # type: ignore[no-untyped-def]
    lab, out, index = killed_backend
    _assert_sound(out)
    assert out.injected
    # The backends all answered before the kill: upstream passes; the held tunnel dropped: timeout fails.
    assert out.findings["upstream"].status is Status.PASS, out.findings["upstream"].summary
    timeout = out.findings["timeout"]
    assert timeout.status is Status.FAIL, timeout.summary
    held = re.search(r"held for (\d+(?:\.\d+)?) s of", _evidence(timeout, "probe"))
    assert held and float(held.group(1)) < HOLD, _evidence(timeout)
    assert f"{held.group(1)} s" in timeout.summary  # the summary gives the measured figure


def test_backend_killed_mid_hold_names_the_backend_not_a_load_balancer(killed_backend) -> None:  # type: ignore[no-untyped-def]
    lab, out, index = killed_backend
    timeout = out.findings["timeout"]
    dead = lab.info()["backends"][index].split("//", 1)[1]
    assert "load balancer" not in timeout.summary, timeout.summary
    assert dead in timeout.summary, timeout.summary


# --- a backend stopped (SIGSTOP), then resumed ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped_backend(survivor_lab) -> Iterator[tuple[Any, Outcome, Outcome]]:  # type: ignore[no-untyped-def]
    lab = survivor_lab
    pid = lab.info()["pids"]["backend-1"]
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped = _run(lab, hold=None)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = _run(lab, hold=None)
    yield lab, stopped, resumed


def test_stopped_backend_fails_upstream_naming_it_and_recovers_when_resumed(stopped_backend) -> None:  # type: ignore[no-untyped-def]
    lab, stopped, resumed = stopped_backend
    _assert_sound(stopped)
    hung = lab.info()["backends"][1].split("//", 1)[1]
    upstream = stopped.findings["upstream"]
    assert upstream.status is Status.FAIL and hung in upstream.summary, upstream.summary
    # Its port still listens (the kernel queues the connection): ss on the proxy host says so.
    ss = "\n".join(e.text for e in upstream.evidence if e.where.startswith("$ ss"))
    assert f"127.0.0.1:{hung.rsplit(':', 1)[1]}" in ss and "nothing listens" not in ss, ss
    assert "timed out" in _evidence(upstream, "probe")
    # The other checks are not disturbed by one hung server (nginx fails over).
    assert {c for c, f in stopped.findings.items() if f.status is Status.FAIL} == {"upstream"}
    _assert_sound(resumed)
    assert resumed.findings["upstream"].status is Status.PASS, resumed.findings["upstream"].summary


def test_stopped_backend_is_called_hung_not_down(stopped_backend) -> None:  # type: ignore[no-untyped-def]
    lab, stopped, _ = stopped_backend
    upstream = stopped.findings["upstream"]
    words = upstream.title + " " + upstream.summary + " " + (upstream.fix.summary if upstream.fix else "")
    assert "crash" not in words and "down" not in upstream.title.lower(), words
    assert re.search(r"hung|hangs|not answering|does not answer|did not answer", words), words


# --- nginx reloaded mid-run -------------------------------------------------------------------------------------


def test_nginx_reloaded_mid_hold_is_still_healthy(survivor_lab) -> None:  # type: ignore[no-untyped-def]
    lab = survivor_lab
    out = _run(
        lab, ready=_hold_through(lab), inject=lambda: os.kill(lab.info()["pids"]["nginx"], signal.SIGHUP)
    )
    _assert_sound(out)
    assert out.injected
    # A graceful reload keeps the old worker's tunnels: nothing failed, and the hold says it stayed open.
    assert not [c for c, f in out.findings.items() if f.status is not Status.PASS], {
        c: f.summary for c, f in out.findings.items() if f.status is not Status.PASS
    }
    timeout = out.findings["timeout"]
    assert "stayed open" in timeout.summary, timeout.summary
    assert "closed: yes" not in _evidence(timeout, "probe"), _evidence(timeout, "probe")


# --- nginx killed mid-run ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def killed_nginx(lab_factory) -> tuple[Any, Outcome]:  # type: ignore[no-untyped-def]
    lab = lab_factory.fresh("healthy")

    def kill() -> None:
        master = lab.info()["pids"]["nginx"]
        workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True, timeout=10)
        os.kill(master, signal.SIGKILL)
        for pid in workers.stdout.split():
            os.kill(int(pid), signal.SIGKILL)

    return lab, _run(lab, ready=_hold_through(lab), inject=kill)


def test_nginx_killed_mid_hold_fails_timeout_with_the_measured_drop(killed_nginx) -> None:  # type: ignore[no-untyped-def]
    lab, out = killed_nginx
    _assert_sound(out)
    assert out.injected
    timeout = out.findings["timeout"]
    assert timeout.status is Status.FAIL, timeout.summary
    held = re.search(r"held for (\d+(?:\.\d+)?) s of", _evidence(timeout, "probe"))
    assert held and float(held.group(1)) < HOLD, _evidence(timeout)


def test_nginx_killed_mid_hold_blames_nginx_not_a_load_balancer(killed_nginx) -> None:  # type: ignore[no-untyped-def]
    lab, out = killed_nginx
    timeout = out.findings["timeout"]
    assert "load balancer" not in timeout.summary, timeout.summary
    assert re.search(r"nginx\b.{0,60}\b(gone|died|killed|not running|no longer|stopped)", timeout.summary), (
        timeout.summary
    )


# --- the SSH session dropped mid-run ------------------------------------------------------------------------------


def _drop_ssh(sshd: int) -> None:
    """The sshd process serving the run's connection dies (as when the host reboots or the link goes)."""
    children = subprocess.run(["pgrep", "-P", str(sshd)], capture_output=True, text=True, timeout=10)
    assert children.stdout.split(), "no sshd child serves the run's connection"
    for pid in children.stdout.split():
        os.kill(int(pid), signal.SIGKILL)


def test_ssh_session_dropped_mid_run_gives_one_sentence_and_a_finished_run(survivor_lab) -> None:  # type: ignore[no-untyped-def]
    lab = survivor_lab
    sshd = lab.info()["pids"]["sshd"]

    def ready(d: Diagnosis) -> bool:  # config in, backends probed, the logs not read yet (after the hold)
        pending = d.facts.pending
        return Fact.CONFIG not in pending and Fact.HANDSHAKE_BACKENDS not in pending and Fact.HOLD in pending

    out = _run(lab, ready=ready, inject=lambda: _drop_ssh(sshd))
    _assert_sound(out)
    assert out.injected
    ssh = lab_target(lab.info()).ssh
    dropped = [note for note in out.report.notes if "dropped" in note]
    assert len(dropped) == 1, out.report.notes  # ONE sentence for the whole run, not one per command
    (note,) = dropped
    assert note.startswith(f"the SSH connection to {ssh} dropped during the run: ")
    assert "the nginx logs" in note and note.endswith("(re-run when the host is reachable).")
    assert "did not finish, so the findings use what was gathered before it" in note
    assert ". " not in note, note  # one sentence
    # What was gathered before the drop still gives verdicts: the config and every probe.
    assert out.findings["route"].status is Status.PASS, out.findings["route"].summary
    assert out.findings["upstream"].status is Status.PASS, out.findings["upstream"].summary
    assert out.findings["timeout"].status is Status.PASS, out.findings["timeout"].summary
    # No log line was read after the drop, and no finding claims one.
    for f in out.findings.values():
        assert not [e for e in f.evidence if e.kind == "log"], (f.id, _evidence(f, "log"))
    # The lab's sshd is still there for the next run.
    again = _run(lab, hold=None)
    _assert_sound(again)
    assert not [n for n in again.report.notes if "dropped" in n], again.report.notes


@pytest.fixture(scope="module")
def dropped_during_a_backend_probe(survivor_lab) -> tuple[Any, Outcome]:  # type: ignore[no-untyped-def]
    """The SSH connection drops while a backend probe waits in its tunnel (the backend is stopped, so the
    probe is surely in flight: the proxy host's sshd holds a TCP connection to it, no answer comes)."""
    lab = survivor_lab
    info = lab.info()
    pid, port = info["pids"]["backend-1"], _backend_ports(lab)[1]

    def ready(d: Diagnosis) -> bool:  # (nginx's own connection to the stopped backend does not count)
        return Fact.CONFIG not in d.facts.pending and _tunnelled(port)

    os.kill(pid, signal.SIGSTOP)
    try:
        out = _run(lab, hold=None, ready=ready, inject=lambda: _drop_ssh(info["pids"]["sshd"]))
    finally:
        os.kill(pid, signal.SIGCONT)
    return lab, out


def test_ssh_dropped_during_a_backend_probe_still_finishes_with_one_sentence(
    dropped_during_a_backend_probe,
) -> None:  # type: ignore[no-untyped-def]
    lab, out = dropped_during_a_backend_probe
    _assert_sound(out)
    assert out.injected
    dropped = [note for note in out.report.notes if "dropped" in note]
    assert len(dropped) == 1 and ". " not in dropped[0], out.report.notes
    # Whatever else was done by then, the probe the drop cut short is named (the tunnel's own end).
    backend = lab.info()["backends"][1].split("//", 1)[1]
    assert f"a backend probe through the tunnel to {backend}" in dropped[0], dropped[0]


def test_ssh_dropped_during_a_backend_probe_is_not_blamed_on_the_backend(
    dropped_during_a_backend_probe,
) -> None:  # type: ignore[no-untyped-def]
    lab, out = dropped_during_a_backend_probe
    upstream = out.findings["upstream"]
    assert "down" not in upstream.title.lower() and "crash" not in (
        upstream.fix.summary if upstream.fix else ""
    )
    assert re.search(r"SSH connection .{0,80}dropped", upstream.summary), upstream.summary
