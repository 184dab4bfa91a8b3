"""The gatherers of one run: which facts to collect for a target, and how, all concurrently.

``plan`` decides from the target what can be known (a config from a file, a dump or
SSH; probes unless ``--offline``; logs and commands over SSH) and returns coroutines
that fill ``Facts``. Every fact a gatherer will produce is put in ``facts.pending`` up
front; one that cannot be had goes to ``facts.unavailable`` with the reason, so the
checks say ``skip`` with that reason. Nothing here imports Textual.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from wsdoctor.diagnose import InputError
from wsdoctor.facts import Facts
from wsdoctor.target import Target

Gatherer = Callable[[Facts], Awaitable[None]]

PROBE_FACTS = (
    "handshake:proxy",
    "handshake:backends",
    "websocket",
    "upgrade",
    "connect",
    "sticky",
    "hold",
    "tls",
    "cors",
)


def plan(target: Target, facts: Facts, notes: list[str]) -> list[Gatherer]:
    gatherers: list[Gatherer] = []
    _client(target, facts)
    config_ready = asyncio.Event()

    if target.ssh:
        from wsdoctor.remote.session import remote_gatherer

        facts.ssh_host = target.ssh
        facts.pending |= {"config", "version", "logs", "commands"}
        gatherers.append(remote_gatherer(target, config_ready, notes))
    elif target.nginx_conf or target.nginx_dump:
        facts.pending |= {"config", "version"}
        gatherers.append(_local_config(target, config_ready))
        facts.unavailable["logs"] = "no log source: give --ssh to read the proxy host's logs"
        facts.unavailable["commands"] = "no proxy host: give --ssh to run nginx -t there"
    else:
        config_ready.set()
        why = "no nginx config given (use --nginx-conf, --nginx-dump or --ssh)"
        facts.unavailable["config"] = why
        facts.unavailable["version"] = why
        facts.unavailable["logs"] = "no log source: give --ssh to read the proxy host's logs"
        facts.unavailable["commands"] = "no proxy host: give --ssh to run nginx -t there"
        if target.nginx_version:
            facts.nginx_version, facts.version_source = target.nginx_version, "--nginx-version"

    if target.offline:
        for name in PROBE_FACTS:
            facts.unavailable[name] = "--offline: no probes were sent"
    else:
        from wsdoctor.probes.plan import probe_gatherers

        gatherers += probe_gatherers(target, facts, config_ready, notes)
    return gatherers


def _client(target: Target, facts: Facts) -> None:
    if not target.url:
        return
    from wsdoctor.wire.client import client_request

    try:
        facts.client = client_request(target.url, target.path, target.transports, target.raw)
    except ValueError as e:
        raise InputError(str(e)) from None


def _local_config(target: Target, config_ready: asyncio.Event) -> Gatherer:
    async def local_config(facts: Facts) -> None:
        try:
            await asyncio.to_thread(load_local_config, target, facts)
        finally:
            facts.pending -= {"config", "version"}
            config_ready.set()

    return local_config


def load_local_config(target: Target, facts: Facts) -> None:
    """--nginx-conf / --nginx-dump on this machine, and the version from --nginx-version or `nginx -v`."""
    from wsdoctor.nginx.load import LoadError, load_dump, load_file

    try:
        if target.nginx_dump:
            if target.nginx_dump == "-":
                text, name = sys.stdin.read(), "nginx -T dump on stdin"
            else:
                with open(target.nginx_dump, encoding="utf-8", errors="replace") as fh:
                    text, name = fh.read(), f"nginx -T dump {target.nginx_dump}"
            facts.config = load_dump(text, name)
        else:
            assert target.nginx_conf is not None
            facts.config = load_file(target.nginx_conf, root=target.root)
    except LoadError as e:
        raise InputError(str(e)) from None
    except OSError as e:
        from wsdoctor.errors import describe

        raise InputError(describe(e) or str(e)) from None
    facts.config_source = facts.config.source
    if target.nginx_version:
        facts.nginx_version, facts.version_source = target.nginx_version, "--nginx-version"
    elif target.nginx_conf and not target.root:
        from wsdoctor.nginx.version import local_version

        v = local_version()
        if v:
            facts.nginx_version, facts.version_source = v, "nginx -v on this machine"
    if not facts.nginx_version:
        facts.unavailable["version"] = (
            "nginx version unknown (give --nginx-version X.Y.Z); version-dependent defaults show both outcomes"
        )
