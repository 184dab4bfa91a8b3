"""What `nginx -t` said, read: the first error about the configuration, its warnings, and what was about
this machine rather than the config (a host name, a user, a file nginx opens); the refusals an older nginx
makes that a newer target version accepts. Pure text work: the syntax check reads remote and local runs the
same way (the local run on a copy is ``testcopy``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wsdoctor.nginx.version import at_least

# The evidence header line that lists the host names mapped (the syntax check reads it back).
HOSTS_LINE = (
    "# host names replaced by 127.0.0.1 in the copy (they resolve on the target, not necessarily here): "
)



# What nginx says about this machine rather than about the configuration.
_ENVIRONMENT = re.compile(
    r"host not found in|could not be resolved|getpwnam\(|getgrnam\(|the \"user\" directive makes sense only"
    r"|dlopen\(|Permission denied|mkdir\(\) |cannot load certificate|BIO_new_file|PEM_read_bio|SSL_CTX_use"
    r"|key values mismatch|no such file or directory\) while opening|cannot open|could not open"
    r"|Address already in use|bind\(\)",
    re.IGNORECASE,
)
_OPEN_FAILED = re.compile(r'open\(\) "([^"]+)" failed')
_LEVEL = re.compile(r"\[(emerg|alert|crit|error|warn)\]")


def environment_line(line: str, config_files: set[str] | frozenset[str] = frozenset()) -> bool:
    """Whether an nginx message is about this machine (a host, a user, a file nginx opens) rather than the
    configuration. A config file nginx cannot open is a config error (the include names it)."""
    m = _OPEN_FAILED.search(line)
    if m is not None:
        return m.group(1) not in config_files and not m.group(1).endswith(".conf")
    return _ENVIRONMENT.search(line) is not None


@dataclass
class Outcome:
    """nginx -t's answer, sorted: the first error about the config, its warnings, what was about this machine."""

    accepted: bool  # exit status 0
    emerg: str | None  # the first [emerg]/[alert]/[crit] about the configuration
    warnings: list[str]
    environment: list[str]  # messages about this machine, not the config
    stopped_by_environment: bool  # nginx refused only for environment reasons (it stops at the first)


def read(
    output: str, exit_status: int | None, config_files: set[str] | frozenset[str] = frozenset()
) -> Outcome:
    emerg: str | None = None
    warnings: list[str] = []
    environment: list[str] = []
    for raw in output.splitlines():
        line = raw.removeprefix("nginx: ").strip()
        m = _LEVEL.search(line)
        if m is None:
            continue
        if environment_line(line, config_files):
            environment.append(line)
        elif m.group(1) == "warn":
            warnings.append(line)
        elif emerg is None:
            emerg = line
    accepted = exit_status == 0
    return Outcome(
        accepted, emerg, warnings, environment, not accepted and emerg is None and bool(environment)
    )


# The refusals of an older nginx that a newer target accepts: (message fragment, the version that accepts it).
VERSION_EXPLAINED = (
    ('unknown directive "http2"', (1, 25, 1)),
    ('invalid parameter "resolve"', (1, 27, 3)),
    ('unknown directive "sticky"', (1, 29, 6)),
    ('unknown directive "add_header_inherit"', (1, 29, 3)),
    ('"keepalive" directive', (1, 29, 7)),
    ('in "proxy_http_version" directive', (1, 29, 4)),
)


def explained_by_version(line: str, target: str | None) -> tuple[int, int, int] | None:
    """The version from which TARGET accepts what LINE refuses, when it does."""
    for fragment, since in VERSION_EXPLAINED:
        if fragment in line and at_least(target, since):
            return since
    return None
