"""The gatherers of one run: which facts to collect for a target, and how, all concurrently.

``plan`` decides from the target what can be known (a config from a file, a dump or SSH; probes unless
``--offline``; nginx logs and commands over SSH; ``--backend-log`` on the proxy host, or here without
``--ssh``) and returns coroutines that fill ``Facts``. Every fact a gatherer will produce is put in
``facts.pending`` up front; one that cannot be had goes to ``facts.unavailable`` with the reason, so the
checks say ``skip`` with that reason. Logs are read once the probes through the proxy are done, so they
hold the lines this run caused.
"""

from __future__ import annotations

import asyncio

from wsdoctor.facts import Fact, Facts, Gatherer
from wsdoctor.gather.local import (
    load_local_config,
    local_version,
    mark_no_config,
    mark_no_host,
    mark_offline,
    set_client,
)
from wsdoctor.gather.probes import probe_gatherers
from wsdoctor.gather.remote import backend_log_gatherer, remote_gatherers
from wsdoctor.remote.session import RemoteSession
from wsdoctor.target import Target


def probes_sent(target: Target) -> bool:
    """Whether this run sends probes through the proxy (then its own log lines are the evidence)."""
    return not target.offline and bool(target.url)


def needs_host(target: Target) -> bool:
    """Whether the run reads a host (the proxy over SSH, or this machine's backend log): then it needs a
    RemoteSession."""
    return bool(target.ssh or target.backend_log)


def plan(
    target: Target,
    facts: Facts,
    notes: list[str],
    session: RemoteSession | None,
    since: float | None = None,
) -> list[Gatherer]:
    """The gatherers for TARGET.  SESSION is the run's proxy host (required when ``needs_host``; the caller
    owns it). SINCE: when the run started (our clock), when it sends probes; log lines older than that
    describe a past state and are left out (None: every line is kept)."""
    if needs_host(target) and session is None:
        raise ValueError("a run that reads a host needs the RemoteSession its caller owns")
    gatherers: list[Gatherer] = []
    set_client(target, facts)
    config_ready = asyncio.Event()
    # Set when every probe through the proxy is done: logs are read after it, so they hold this run's lines.
    probes_done = asyncio.Event()

    if target.ssh:
        assert session is not None
        facts.ssh_host = target.ssh
        facts.pending |= {Fact.CONFIG, Fact.VERSION, Fact.LOGS, Fact.COMMANDS}
        gatherers += remote_gatherers(session, config_ready, notes, probes_done=probes_done, since=since)
    elif target.nginx_conf or target.nginx_dump:
        facts.pending |= {Fact.CONFIG, Fact.VERSION}
        gatherers.append(_local_config(target, config_ready))
        gatherers.append(_local_version(target))
        mark_no_host(facts)
    else:
        config_ready.set()
        mark_no_config(target, facts)
        mark_no_host(facts)
    if target.backend_log and not target.ssh:
        # Without --ssh this machine is where the backend runs: the same session code reads its log here.
        assert session is not None
        facts.pending.add(Fact.LOGS)
        gatherers.append(backend_log_gatherer(session, notes, probes_done=probes_done, since=since))

    if target.offline:
        mark_offline(facts)
        probes_done.set()
    else:
        gatherers += probe_gatherers(target, facts, session, config_ready, probes_done)
    return gatherers


def _local_config(target: Target, config_ready: asyncio.Event) -> Gatherer:
    async def local_config(facts: Facts) -> None:
        try:
            await asyncio.to_thread(load_local_config, target, facts)
        finally:
            facts.pending.discard(Fact.CONFIG)
            config_ready.set()

    return local_config


def _local_version(target: Target) -> Gatherer:
    """--nginx-version, else `nginx -v` on this machine (for --nginx-conf of this machine's nginx)."""

    async def local_version_gatherer(facts: Facts) -> None:
        try:
            await asyncio.to_thread(local_version, target, facts)
        finally:
            facts.pending.discard(Fact.VERSION)

    local_version_gatherer.__name__ = "local_version"
    return local_version_gatherer
