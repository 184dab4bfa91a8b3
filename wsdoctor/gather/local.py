"""Facts this machine gives without any network or event loop: the client request, a config file or
dump, `nginx -v`, `nginx -t` on a copy of a config file, and what an offline run cannot know.

Shared by the gatherers (which run these in threads) and by the synchronous `check --offline` path,
which must not pay for asyncio: it is the cost of a whole process that users feel in scripts.
"""

from __future__ import annotations

import sys

from wsdoctor.errors import InputError, describe
from wsdoctor.facts import NO_CONFIG, OFFLINE, PROBE_FACTS, CommandResult, Fact, Facts
from wsdoctor.nginx.load import LoadError, load_dump, load_file
from wsdoctor.nginx.version import local_version as ask
from wsdoctor.target import Target
from wsdoctor.wire.client import client_request

NO_LOGS = "no nginx log source: give --ssh to read the proxy host's logs"
NO_COMMANDS = "no proxy host: give --ssh to run nginx -t there"
UNKNOWN_VERSION = (
    "nginx version unknown (give --nginx-version X.Y.Z); version-dependent defaults show both outcomes"
)
# Where the version came from, as the report says it (the SSH gatherer says "nginx -V on HOST").
VERSION_HERE = "nginx -v here"
VERSION_OPTION = "--nginx-version"
NGINX_T = "nginx -t"


def set_client(target: Target, facts: Facts) -> None:
    """The request socket.io-client really makes for --url/--path/--transports."""
    if not target.url:
        return
    try:
        facts.client = client_request(target.url, target.path, target.transports, target.raw)
    except ValueError as e:
        raise InputError(str(e)) from None


def load_local_config(target: Target, facts: Facts) -> None:
    """--nginx-conf / --nginx-dump on this machine."""
    try:
        if target.nginx_dump:
            if target.nginx_dump == "-":
                text, name = sys.stdin.read(), "stdin"
            else:
                with open(target.nginx_dump, encoding="utf-8", errors="replace") as fh:
                    text, name = fh.read(), target.nginx_dump
            facts.config = load_dump(text, name)
        else:
            assert target.nginx_conf is not None
            facts.config = load_file(target.nginx_conf, root=target.root)
    except LoadError as e:
        raise InputError(str(e)) from None
    except OSError as e:
        raise InputError(describe(e) or str(e)) from None
    facts.config_source = facts.config.source
    if target.nginx_conf and not target.nginx_dump and not target.ssh and target.nginx_test:
        local_nginx_test(facts)


def local_nginx_test(facts: Facts) -> None:
    """`nginx -t` of this machine's nginx on a copy of the loaded config (never on the files themselves), as
    `facts.commands["nginx -t"]`: its first line says which nginx judged and what was made equal for it."""
    if facts.config is None or not facts.config.files:
        return
    # subprocess, tempfile and threads: imported only when this machine's nginx is really run.
    from wsdoctor.nginx import testcopy

    test = testcopy.run(facts.config)
    if test is None:
        return  # no nginx here: the syntax check says what it cannot see
    facts.commands[NGINX_T] = CommandResult(
        argv=test.argv,
        host="local",
        exit_status=test.exit_status,
        stdout="\n".join(test.header()),
        stderr=test.output,
        error=test.error,
    )


def local_version(target: Target, facts: Facts) -> None:
    """--nginx-version, else `nginx -v` on this machine (only for --nginx-conf of this machine's nginx)."""
    if target.nginx_version:
        facts.nginx_version, facts.version_source = target.nginx_version, VERSION_OPTION
    elif target.nginx_conf and not target.root:
        v = ask()
        if v:
            facts.nginx_version, facts.version_source = v, VERSION_HERE
    if not facts.nginx_version:
        facts.unavailable[Fact.VERSION] = UNKNOWN_VERSION


def mark_no_config(target: Target, facts: Facts) -> None:
    facts.unavailable[Fact.CONFIG] = NO_CONFIG
    facts.unavailable[Fact.VERSION] = NO_CONFIG
    if target.nginx_version:
        facts.nginx_version, facts.version_source = target.nginx_version, VERSION_OPTION


def mark_no_host(facts: Facts) -> None:
    facts.unavailable[Fact.LOGS] = NO_LOGS
    facts.unavailable[Fact.COMMANDS] = NO_COMMANDS


def mark_offline(facts: Facts) -> None:
    for name in PROBE_FACTS:
        facts.unavailable[name] = OFFLINE


def offline_without_loop(target: Target) -> bool:
    """Whether this run needs nothing but this machine's files (no probes, no SSH, no backend log)."""
    return target.offline and not target.ssh and not target.backend_log


def gather_offline(target: Target, facts: Facts) -> None:
    """Everything an offline run on this machine knows, synchronously."""
    set_client(target, facts)
    if target.nginx_conf or target.nginx_dump:
        load_local_config(target, facts)
        local_version(target, facts)
    else:
        mark_no_config(target, facts)
    mark_no_host(facts)
    mark_offline(facts)
