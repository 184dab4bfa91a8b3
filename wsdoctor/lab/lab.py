"""The lab: real nginx, three Socket.IO backends and an OpenSSH sshd on loopback, one scenario.

``Lab.up("no-sticky", backends="node")`` renders the scenario's nginx template into the lab directory,
generates a CA and server certificate, a JWT secret and tokens, starts the backends (python-socketio:
``python -m wsdoctor.lab.backend``; Node: ``node wsdoctor/lab/node/backend.js``, or the scenario's own
server kind: Socket.IO 2.x, a plain WebSocket server),
nginx (``nginx -p DIR -c FILE -g 'daemon off;'``, never the system service) and sshd, waits (bounded)
until every port answers, and writes ``state.json``. Everything lives in that one directory, so
``Lab.load(dir)`` in another process (``wsdoctor lab status`` / ``down``) finds the same lab again, and
``down`` signals exactly the pids it started, after checking ``/proc/PID/cmdline`` still names the
directory. Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wsdoctor.lab import catalog, procs
from wsdoctor.lab.catalog import BACKEND_KINDS, BACKEND_PATH, PUBLIC_PATH, SERVERS, Scenario

STATE_FILE = "state.json"
STATE_VERSION = 1
TOKEN_ENV = "WSDOCTOR_LAB_TOKEN"
BACKEND_COUNT = 3
READY_TIMEOUT = 15.0  # seconds: every port must answer within this
HOST = "127.0.0.1"
TEMPLATE_DIR = Path(__file__).resolve().parent / "scenarios"
INSTALL_HINT = "run `apt-get install nginx openssh-server` (or `./run setup` as root) and try again"
#: What the backends run when ``Lab.up`` is not told (``--backends``).
DEFAULT_BACKENDS = "python"
NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_BACKEND = NODE_DIR / "backend.js"
# The npm packages each Node server kind loads (installed into NODE_DIR/node_modules by `./run setup`).
_NODE_PACKAGES = {
    "socketio4": ("socket.io", "express"),
    "socketio2": ("socket.io-v2", "express"),
    "ws": ("ws",),
}

# `{name}` placeholders in templates; `${var}` (nginx syntax) and `{ …` blocks are left alone.
_PLACEHOLDER = re.compile(r"(?<!\$)\{([a-z][a-z0-9_]*)\}")
# A template may hold several files (like `nginx -T`): sections start with this marker line.
_FILE_MARK = re.compile(r"^# --- file: (\S+) ---\n", re.M)
_UNSAFE_PATH = re.compile(r"[\s\"';{}$\\#]")
_LOG_PATH = re.compile(r"^\s*(?:access_log|error_log)\s+(/\S+?);?(?:\s|$)", re.M)


class LabError(RuntimeError):
    """The lab could not do what was asked; the message is one sentence saying what to do next."""


def default_dir() -> Path:
    """``$WSDOCTOR_LAB_DIR``, else ``$XDG_STATE_HOME/wsdoctor/lab`` (``~/.local/state/wsdoctor/lab``)."""
    env = os.environ.get("WSDOCTOR_LAB_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "wsdoctor" / "lab"


def find_binary(name: str) -> str | None:
    """NAME on PATH or in the sbin directories (root's PATH has them, a user's often does not)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def render(template: str, values: dict[str, str]) -> dict[str, str]:
    """Fill a scenario template: ``{relpath: text}``, the main ``nginx.conf`` first.

    Plain ``{placeholder}`` substitution (no Jinja): nginx's own braces never look like a placeholder.
    An unknown placeholder is a bug in the template and raises LabError.
    """

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise LabError(f"the lab template uses an unknown placeholder {{{key}}}; fix the template")
        return values[key]

    parts = _FILE_MARK.split(template)
    files = {"nginx.conf": _PLACEHOLDER.sub(fill, parts[0])}
    for i in range(1, len(parts), 2):
        files[parts[i]] = _PLACEHOLDER.sub(fill, parts[i + 1])
    return files


def node_binary() -> str | None:
    """The Node.js interpreter (Debian names it ``node``, older packages ``nodejs``)."""
    return shutil.which("node") or shutil.which("nodejs")


def node_package_version(name: str) -> str | None:
    """The version of npm package NAME pinned in the lab's package-lock.json (aliases resolved)."""
    try:
        lock = json.loads((NODE_DIR / "package-lock.json").read_text())
        return str(lock["packages"][f"node_modules/{name}"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def server_description(server: str) -> str:
    """SERVER's words with the pinned version, e.g. "Node socket.io 4.8.4 (Engine.IO 4) on Express"."""
    kind, words = SERVERS[server]
    package = {"socketio4": "socket.io", "socketio2": "socket.io-v2", "ws": "ws"}.get(server)
    if package is None:
        return words
    version = node_package_version(package)
    if version is None:
        return words
    if server == "ws":
        return words.replace("Node ws", f"Node ws {version}")
    label = "socket.io 2.x" if server == "socketio2" else "socket.io"
    return words.replace(label, f"socket.io {version}", 1)


def _check_node(server: str) -> None:
    """LabError with what to run when Node or the lab's npm packages are missing."""
    if node_binary() is None:
        raise LabError(
            "Node.js is not installed (the lab's Node backends need it); run `apt-get install nodejs npm` "
            "(or `./run setup` as root) and try again, or use --backends python"
        )
    missing = [
        p for p in _NODE_PACKAGES[server] if not (NODE_DIR / "node_modules" / p / "package.json").exists()
    ]
    if missing:
        raise LabError(
            f"the lab's Node packages are not installed (missing: {', '.join(missing)}); run `./run setup` "
            f"(or `npm ci` in {NODE_DIR}) and try again"
        )


def _package_root() -> str:
    """The directory that holds the ``wsdoctor`` package, so backends import it without an install."""
    return str(Path(__file__).resolve().parents[2])


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = _package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop(TOKEN_ENV, None)
    return env


def _spawn(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ARGV detached from our session (the lab outlives `lab up`), output into LOG."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=_child_env(),
            start_new_session=True,
            close_fds=True,
        )


class _PortTaken(Exception):
    """A port chosen as free was taken before our process bound it: pick new ports and retry."""


class Lab:
    """A lab directory and the processes it runs (see the module docstring)."""

    def __init__(self, directory: Path, state: dict[str, Any]) -> None:
        self.directory = directory
        self.state = state
        self.marker = f"{directory}/"  # every command line we start names a path under the lab dir
        self._lock = threading.Lock()

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        scenario: str = "healthy",
        directory: str | Path | None = None,
        *,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
        ssh: bool = True,
        timeout: float = READY_TIMEOUT,
        backends: str | None = None,
    ) -> Lab:
        """Start SCENARIO in DIRECTORY (a lab already running there is stopped first) and return it.

        ``ping_interval``/``ping_timeout`` override the scenario's backend settings (seconds), e.g. to
        scale a test down; ``ssh=False`` leaves sshd out. ``backends`` is ``"python"`` (python-socketio)
        or ``"node"`` (Node socket.io 4); a scenario about the server itself (Socket.IO 2.x, a plain
        WebSocket server) runs its own server kind (``info()["server"]`` says which).
        """
        try:
            sc = catalog.get(scenario)
        except ValueError as e:
            raise LabError(str(e)) from None
        backends = backends or DEFAULT_BACKENDS
        if backends not in BACKEND_KINDS:
            raise LabError(f"unknown backends {backends!r}; choose one of: {', '.join(BACKEND_KINDS)}")
        server = sc.server(backends)
        if SERVERS[server][0] == "node":
            _check_node(server)
        nginx = find_binary("nginx")
        if nginx is None:
            raise LabError(f"nginx is not installed; {INSTALL_HINT}")
        if ssh and not Path("/usr/sbin/sshd").exists():
            raise LabError(f"/usr/sbin/sshd is not installed; {INSTALL_HINT}")
        needed = (
            ("socketio", "uvicorn", "jwt", "trustme") if server == "python-socketio" else ("jwt", "trustme")
        )
        missing = [m for m in needed if importlib.util.find_spec(m) is None]
        if missing:
            raise LabError(
                f"the lab needs the Python packages of wsdoctor's `lab` extra (missing: {', '.join(missing)}); "
                "run `pip install 'wsdoctor[lab]'` (or `./run setup`) and try again"
            )
        root = Path(directory).expanduser() if directory else default_dir()
        root = root.resolve()
        if _UNSAFE_PATH.search(str(root)):
            raise LabError(
                f"the lab directory {str(root)!r} holds a space, quote or nginx special character that the "
                "generated nginx config cannot carry; choose another with --dir"
            )
        if (root / STATE_FILE).exists():
            with contextlib.suppress(LabError):
                cls.load(root).down()
        options = {
            "ping_interval": float(ping_interval if ping_interval is not None else sc.ping_interval),
            "ping_timeout": float(ping_timeout if ping_timeout is not None else sc.ping_timeout),
            "ssh": ssh,
            "backends": backends,
            "server": server,
        }
        for attempt in range(3):
            try:
                return cls._start(sc, root, nginx, options, timeout)
            except _PortTaken as e:
                if attempt == 2:
                    raise LabError(f"{e}; another program keeps taking the lab's ports, try again") from None
        raise AssertionError("unreachable")

    @classmethod
    def load(cls, directory: str | Path | None = None) -> Lab:
        """The lab recorded in DIRECTORY's state file (running or not)."""
        root = (Path(directory).expanduser() if directory else default_dir()).resolve()
        path = root / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab in {root}; start one with `wsdoctor lab up`") from None
        except (OSError, ValueError) as e:
            raise LabError(f"cannot read {path} ({e}); run `wsdoctor lab up` to start a fresh lab") from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise LabError(f"{path} was written by another wsdoctor version; run `wsdoctor lab up` again")
        return cls(root, state)

    @classmethod
    def _start(cls, sc: Scenario, root: Path, nginx: str, options: dict[str, Any], timeout: float) -> Lab:
        from wsdoctor.lab import credentials

        logs = root / "logs"
        prefix = root / "nginx"
        for d in (root, logs, prefix, prefix / "html", prefix / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        for old in logs.rglob("*"):  # fresh logs for a fresh lab (only our own files live here)
            if old.is_file():
                old.unlink()
        # The backends append to it; it exists from the start so `--backend-log` works even when every
        # backend is stopped (backend-down-all) and has nothing to say.
        (logs / "backend.log").touch()

        tls = credentials.make_tls(root / "tls")
        secret = credentials.make_secret()
        secret_file = root / "jwt-secret"
        credentials.write_secret(secret_file, secret)
        valid_token = credentials.make_token(secret)
        token = credentials.make_token(secret, expired=True) if sc.token == "expired" else valid_token

        public_port, *backend_ports = procs.free_ports(1 + BACKEND_COUNT)
        for i in sc.stopped:  # a backend meant to be down gets a port no other process will be handed
            backend_ports[i] = procs.quiet_port()
        values = {
            "dir": str(root),
            "prefix": f"{prefix}/",
            "log_dir": str(logs),
            "access_log": str(logs / "access.log"),
            "error_log": str(logs / "error.log"),
            "pid_file": str(prefix / "nginx.pid"),
            "tmp": str(prefix / "tmp"),
            "cert": str(tls.cert_file),
            "key": str(tls.key_file),
            "public_port": str(public_port),
            **{f"backend_{i}": f"{HOST}:{p}" for i, p in enumerate(backend_ports)},
        }
        template = (TEMPLATE_DIR / sc.template).read_text()
        files = render(template, values)
        for rel, text in files.items():
            target = prefix / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            for log_path in _LOG_PATH.findall(text):  # nginx does not create log directories
                Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        (prefix / "html" / "index.html").write_text("<h1>wsdoctor lab</h1>\n")

        url = f"wss://{HOST}:{public_port}"
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "scenario": sc.name,
            "dir": str(root),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "down": False,
            "public_port": public_port,
            "backend_ports": backend_ports,
            "url": url,
            "path": PUBLIC_PATH,
            "transports": list(sc.transports),
            "token": token,
            "valid_token": valid_token,
            "secret": secret,
            "secret_file": str(secret_file),
            "ca_file": str(tls.ca_file),
            "cert_file": str(tls.cert_file),
            "key_file": str(tls.key_file),
            "nginx_bin": nginx,
            "nginx_prefix": f"{prefix}/",
            "nginx_conf": str(prefix / "nginx.conf"),
            "nginx_files": [str(prefix / rel) for rel in files],
            "access_log": str(logs / "access.log"),
            "error_log": str(logs / "error.log"),
            "backend_log": str(logs / "backend.log"),
            "log_dir": str(logs),
            "ping_interval": options["ping_interval"],
            "ping_timeout": options["ping_timeout"],
            "backends_kind": options["backends"],
            "server": options["server"],
            "processes": {},
            "ssh": None,
        }
        lab = cls(root, state)
        lab._save()
        try:
            lab._launch(sc, options, timeout)
        except BaseException:
            lab.down()
            raise
        return lab

    def _backend_argv(self, i: int) -> list[str]:
        s = self.state
        public = s["public_port"]
        server = self.server
        common = [
            "--lab-dir",
            self.marker,
            "--port",
            str(s["backend_ports"][i]),
            "--instance",
            f"backend-{i}",
        ]
        if server == "python-websockets":
            return [sys.executable, "-m", "wsdoctor.lab.plainws", *common, "--log", s["backend_log"]]
        if SERVERS[server][0] == "node":
            return [
                node_binary() or "node",
                str(NODE_BACKEND),
                "--server",
                server,
                *common,
                "--path",
                BACKEND_PATH,
                "--secret-file",
                s["secret_file"],
                "--ping-interval",
                repr(s["ping_interval"]),
                "--ping-timeout",
                repr(s["ping_timeout"]),
                "--cors-origin",
                f"https://{HOST}:{public}",
                "--cors-origin",
                f"https://localhost:{public}",
                "--log",
                s["backend_log"],
            ]
        return [
            sys.executable,
            "-m",
            "wsdoctor.lab.backend",
            "--lab-dir",
            self.marker,
            "--port",
            str(s["backend_ports"][i]),
            "--instance",
            f"backend-{i}",
            "--path",
            BACKEND_PATH,
            "--secret-file",
            s["secret_file"],
            "--ping-interval",
            repr(s["ping_interval"]),
            "--ping-timeout",
            repr(s["ping_timeout"]),
            "--cors-origin",
            f"https://{HOST}:{public}",
            "--cors-origin",
            f"https://localhost:{public}",
            "--log",
            s["backend_log"],
        ]

    def _launch(self, sc: Scenario, options: dict[str, Any], timeout: float) -> None:
        """Start every process, then wait (bounded) until each answers; LabError names the one that did not."""
        s = self.state
        logs = Path(s["log_dir"])
        started: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(BACKEND_COUNT):
            name = f"backend-{i}"
            record = {"pid": None, "port": s["backend_ports"][i], "log": str(logs / f"{name}.out")}
            if i in sc.stopped:
                record["expected"] = "stopped"
            else:
                proc = _spawn(self._backend_argv(i), Path(record["log"]), self.directory)
                started[name] = proc
                record.update(pid=proc.pid, expected="running")
            s["processes"][name] = record
        argv = [s["nginx_bin"], "-p", s["nginx_prefix"], "-c", s["nginx_conf"], "-g", "daemon off;"]
        nginx_log = logs / "nginx.out"
        proc = _spawn(argv, nginx_log, self.directory)
        started["nginx"] = proc
        s["processes"]["nginx"] = {
            "pid": proc.pid,
            "port": s["public_port"],
            "log": str(nginx_log),
            "expected": "running",
        }
        self._save()

        ssh_future: Future[Any] | None = None
        pool: ThreadPoolExecutor | None = None
        if options["ssh"]:
            from wsdoctor.lab.sshd import start_sshd

            pool = ThreadPoolExecutor(max_workers=1)
            ssh_future = pool.submit(start_sshd, self.directory / "ssh", ready_timeout=timeout)
        try:
            self._wait_ready(started, timeout)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)  # never leave an sshd we cannot record
            if ssh_future is not None and ssh_future.exception() is None:
                self._record_sshd(ssh_future.result())
        if ssh_future is not None and ssh_future.exception() is not None:
            raise LabError(f"the lab's sshd did not start: {ssh_future.exception()}")

    def _record_sshd(self, sshd: Any) -> None:
        self.state["processes"]["sshd"] = {
            "pid": sshd.pid,
            "port": sshd.port,
            "log": str(sshd.log_file),
            "expected": "running",
        }
        self.state["ssh"] = {
            "host": sshd.host,
            "port": sshd.port,
            "user": sshd.user,
            "key": str(sshd.client_key),
            "known_hosts": str(sshd.known_hosts),
            "host_key_pub": str(sshd.host_key_pub),
            "config_file": str(sshd.config_file),
        }
        self._save()

    def _wait_ready(self, started: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
        waiting = dict(started)
        deadline = time.monotonic() + timeout
        while waiting:
            for name, proc in list(waiting.items()):
                record = self.state["processes"][name]
                if proc.poll() is not None:
                    self._startup_failed(name, record, f"exited with status {proc.returncode}")
                if procs.listening(record["port"], pid=proc.pid):
                    del waiting[name]
                elif "Address already in use" in procs.first_lines(Path(record["log"]), 5):
                    # nginx keeps retrying a failed bind for seconds: give up on this port at once.
                    raise _PortTaken(f"{name} could not bind port {record['port']}")
            if not waiting:
                return
            if time.monotonic() > deadline:
                name = next(iter(waiting))
                self._startup_failed(
                    name, self.state["processes"][name], f"did not answer within {timeout:g} s"
                )
            time.sleep(0.02)

    def _startup_failed(self, name: str, record: dict[str, Any], what: str) -> None:
        log = Path(record["log"])
        detail = procs.first_lines(log, 2) if name == "nginx" else procs.last_lines(log, 2)
        if name == "nginx" and not detail:
            detail = procs.first_lines(Path(self.state["error_log"]), 2)
        if "address already in use" in detail.lower():
            raise _PortTaken(f"{name} could not bind port {record['port']}")
        raise LabError(
            f"the lab's {name} {what} on port {record['port']}"
            + (f" ({detail})" if detail else "")
            + f"; see {log} and retry `wsdoctor lab up`"
        )

    # --- state ---------------------------------------------------------------------------------

    def _save(self) -> None:
        path = self.directory / STATE_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the secret and tokens
        with os.fdopen(fd, "w") as f:
            json.dump(self.state, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    @property
    def scenario(self) -> Scenario:
        return catalog.get(self.state["scenario"])

    @property
    def backends_kind(self) -> str:
        """``"node"`` or ``"python"``: what ``--backends`` chose (labs from before it ran python)."""
        return str(self.state.get("backends_kind", "python"))

    @property
    def server(self) -> str:
        """The server implementation the backends run (a key of ``catalog.SERVERS``)."""
        return str(self.state.get("server", self.scenario.server(self.backends_kind)))

    @property
    def url(self) -> str:
        return str(self.state["url"])

    @property
    def path(self) -> str:
        return str(self.state["path"])

    @property
    def token(self) -> str:
        return str(self.state["token"])

    @property
    def ca_file(self) -> str:
        return str(self.state["ca_file"])

    @property
    def backends(self) -> list[str]:
        """Base URLs of the three backends (stopped ones included: their ports refuse)."""
        return [f"http://{HOST}:{p}" for p in self.state["backend_ports"]]

    @property
    def public_base(self) -> str:
        """``https://127.0.0.1:PORT``: the public side for plain HTTP requests (polling, REST)."""
        return f"https://{HOST}:{self.state['public_port']}"

    def pids(self) -> dict[str, int]:
        """Pids of the processes that are meant to be running, by name."""
        return {
            name: int(r["pid"])
            for name, r in self.state["processes"].items()
            if r.get("pid") and r.get("expected") == "running"
        }

    def all_pids(self) -> list[int]:
        """Every pid this lab ever started and still records (for leak checks)."""
        pids = {int(r["pid"]) for r in self.state["processes"].values() if r.get("pid")}
        pids.update(int(p) for p in self.state.get("retired_pids", []))
        return sorted(pids)

    def info(self) -> dict[str, Any]:
        """The facts of ``wsdoctor lab up --format json``: what a client and ``wsdoctor check`` need."""
        s = self.state
        sc = self.scenario
        ssh = s.get("ssh")
        client_url = s["url"] + (sc.client_url_path or "")
        client_path = sc.client_path or s["path"]
        info: dict[str, Any] = {
            "scenario": s["scenario"],
            "dir": s["dir"],
            "url": s["url"],
            "path": s["path"],
            "transports": list(s["transports"]),
            "token": s["token"],
            "ca_file": s["ca_file"],
            "nginx_conf": s["nginx_conf"],
            "nginx_prefix": s["nginx_prefix"],
            "access_log": s["access_log"],
            "error_log": s["error_log"],
            "backends": self.backends,
            "ssh": (
                {k: ssh[k] for k in ("host", "port", "user", "key", "known_hosts")}
                if ssh is not None
                else None
            ),
            "pids": self.pids(),
            # extras
            "backends_kind": self.backends_kind,
            "server": self.server,
            "server_description": server_description(self.server),
            "broken": sc.broken,
            "symptom": sc.symptom,
            "client_url": client_url,
            "client_path": client_path,
            "client_transports": list(s["transports"]),
            "client_namespace": sc.client_url_path or "/",
            "origin": self.public_base,
            "public_port": s["public_port"],
            "backend_ports": list(s["backend_ports"]),
            "backend_path": BACKEND_PATH,
            "instances": {f"backend-{i}": url for i, url in enumerate(self.backends)},
            "stopped_backends": [
                i for i in range(BACKEND_COUNT) if s["processes"][f"backend-{i}"]["expected"] == "stopped"
            ],
            "valid_token": s["valid_token"],
            "token_env": TOKEN_ENV,
            "secret": s["secret"],
            "backend_log": s["backend_log"],
            "nginx_files": list(s["nginx_files"]),
            "ping_interval": s["ping_interval"],
            "ping_timeout": s["ping_timeout"],
            "logs": self._log_files(),
            "check_command": self.check_command(),
            "ssh_check_command": self.check_command(ssh=True) if ssh is not None else None,
        }
        return info

    def _log_files(self) -> list[str]:
        files = {str(p) for p in Path(self.state["log_dir"]).rglob("*") if p.is_file()}
        files.update((self.state["access_log"], self.state["error_log"], self.state["backend_log"]))
        return sorted(files)

    def check_command(self, ssh: bool = False) -> str:
        """The exact ``wsdoctor check …`` that diagnoses this lab as its (possibly broken) client sees it."""
        s = self.state
        sc = self.scenario
        argv = ["wsdoctor", "check"]
        if ssh:
            sh = s["ssh"]
            argv += ["--ssh", f"{sh['user']}@{sh['host']}:{sh['port']}", "--identity", sh["key"]]
            argv += ["--known-hosts", sh["known_hosts"]]
        argv += ["--url", s["url"] + (sc.client_url_path or "")]
        if sc.client_url_path is None:
            argv += ["--path", s["path"]]
        if tuple(s["transports"]) != ("polling", "websocket"):
            argv += ["--transports", ",".join(s["transports"])]
        argv += ["--ca-file", s["ca_file"], "--token-env", TOKEN_ENV]
        if not ssh:  # over SSH wsdoctor finds the running nginx and its -c itself
            argv += ["--nginx-conf", s["nginx_conf"]]
        argv += ["--backend-log", s["backend_log"]]
        if sc.name == "short-timeout":
            argv += ["--hold", "8"]  # longer than the 3 s proxy_read_timeout: the drop shows
        return " ".join(shlex.quote(a) for a in argv)

    def status(self) -> dict[str, Any]:
        """Each process: running, stopped (on purpose) or crashed (meant to run, gone)."""
        processes: dict[str, dict[str, Any]] = {}
        crashed: list[str] = []
        for name, r in self.state["processes"].items():
            if self.state.get("down") or r.get("expected") == "stopped":
                st = "stopped"
            elif r.get("pid") and procs.owned(int(r["pid"]), self.marker):
                st = "running"
            else:
                st = "crashed"
                crashed.append(name)
            processes[name] = {"pid": r.get("pid"), "port": r.get("port"), "status": st, "log": r.get("log")}
        if self.state.get("down"):
            overall = "down"
        elif crashed:
            overall = "degraded"
        else:
            overall = "up"
        return {
            "scenario": self.state["scenario"],
            "backends_kind": self.backends_kind,
            "server": self.server,
            "dir": self.state["dir"],
            "state": overall,
            "processes": processes,
            "crashed": crashed,
        }

    # --- control -------------------------------------------------------------------------------

    def down(self) -> dict[str, int]:
        """Stop every process this lab started (by pid, ours only); keep every file. Returns {name: pid}."""
        with self._lock:
            by_pid = {int(r["pid"]): name for name, r in self.state["processes"].items() if r.get("pid")}
            stopped = procs.terminate_all(list(by_pid), self.marker)  # all at once: down is quick
            self.state["down"] = True
            self._save()
        return {by_pid[pid]: pid for pid in stopped}

    def stop_backend(self, index: int) -> int | None:
        """Stop backend INDEX on purpose (status: stopped). Returns the pid stopped, if it ran."""
        name = f"backend-{index}"
        with self._lock:
            r = self.state["processes"][name]
            pid = r.get("pid")
            done = bool(pid) and procs.terminate(int(pid), self.marker)
            r["expected"] = "stopped"
            self._save()
        return int(pid) if done else None

    def start_backend(self, index: int, timeout: float = READY_TIMEOUT) -> int:
        """(Re)start backend INDEX on its port and wait until it answers. Returns its pid."""
        name = f"backend-{index}"
        with self._lock:
            r = self.state["processes"][name]
            old = r.get("pid")
            if old and procs.owned(int(old), self.marker):
                return int(old)
            if old:
                self.state.setdefault("retired_pids", []).append(int(old))
            proc = _spawn(self._backend_argv(index), Path(r["log"]), self.directory)
            r.update(pid=proc.pid, expected="running")
            self.state["down"] = False
            self._save()
        try:
            self._wait_ready({name: proc}, timeout)
        except _PortTaken:
            procs.terminate(proc.pid, self.marker)
            raise LabError(
                f"{name} could not bind its port {r['port']} again (another program took it); "
                "run `wsdoctor lab up` to start a fresh lab"
            ) from None
        return proc.pid

    def __repr__(self) -> str:
        return f"Lab({self.state['scenario']!r}, {str(self.directory)!r})"
