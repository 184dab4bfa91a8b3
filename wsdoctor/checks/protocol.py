"""`protocol` (checklist): what the backends and the proxy really speak, and can the clients speak it?

Read off the servers' own answers: the polling handshake (an Engine.IO 4 open packet ``0{…}``; Socket.IO 2
answers every ``EIO`` value, 4 included, with an Engine.IO 3 payload ``97:0{…}``; a 3/4 server refuses a
version it does not speak with Node's code 5 or python's "unsupported version" sentence), the direct
WebSocket (its first frame is the open packet, or a plain WebSocket server's own greeting), a 426 Upgrade
Required (a WebSocket server that speaks nothing else). Then the clients of ``--client-version``:
socket.io-client 3/4 speak Engine.IO 4 only and fail against a 2.x server (polling: "server error",
websocket-only: "It seems you are trying to reach a Socket.IO server in v2.x with a v3.x client"); 2.x
clients need a 2.x server or a 3/4 server with ``allowEIO3: true``. A plain WebSocket endpoint is not
Socket.IO at all: the checks that only make sense for Socket.IO then skip with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Verdict, skip
from wsdoctor.checks._util import EIO3, EIO4, PLAIN_HTTP, PLAIN_WS, SPEECH_WORDS, Place, Speech
from wsdoctor.facts import NO_URL, NODE_WS, PY_WEBSOCKETS, Fact, Facts
from wsdoctor.report import Evidence, Fix, Status
from wsdoctor.wire.client import eio_of

ID = "protocol"
TITLE = "Engine.IO / Socket.IO protocol versions"
NEEDS = (Fact.HANDSHAKE_PROXY, Fact.HANDSHAKE_BACKENDS, Fact.WEBSOCKET)

_ALLOW_EIO3 = "`allowEIO3: true` in the options of socket.io's Server"
_V2_MESSAGE = "It seems you are trying to reach a Socket.IO server in v2.x with a v3.x client"


def _where(facts: Facts) -> Place:
    return Place(None)


@dataclass
class _Seen:
    proxy: Speech | None
    backends: dict[str, Speech]


def _live(facts: Facts, place: Place) -> _Seen:
    return _Seen(u.proxy_speech(facts), u.backend_speeches(facts))


def _client(facts: Facts) -> int:
    return int(getattr(facts.target, "client_version", 4) or 4)


def _combine(facts: Facts, place: Place, said: None, seen: _Seen) -> Verdict:
    if u.offline(facts):
        return skip(u.fact_reason(facts, Fact.HANDSHAKE_PROXY, "no probes were sent"))
    known = ([seen.proxy] if seen.proxy is not None and seen.proxy.kind else []) + [
        s for s in seen.backends.values() if s.kind
    ]
    if not known:
        return skip(_unknown(facts, seen))
    kinds = {s.kind for s in known}
    if len(kinds) > 1:
        return _mixed(facts, known)
    kind = known[0].kind
    main = seen.proxy if seen.proxy is not None and seen.proxy.kind else known[0]
    ev = _evidence(known)
    where = _where_text(seen, known)
    cv = _client(facts)
    if kind == PLAIN_WS:
        return _plain(facts, main, ev, where, websocket=True)
    if kind == PLAIN_HTTP:
        return _plain(facts, main, ev, where, websocket=False)
    if kind == EIO3:
        return _eio3(facts, main, ev, where, cv)
    return _eio4(facts, main, ev, where, cv)


def _eio4(facts: Facts, main: Speech, ev: list[Evidence], where: str, cv: int) -> Verdict:
    if cv != 2:
        return Verdict(
            Status.PASS,
            "",
            f"{where} speak{_s(where)} {SPEECH_WORDS[EIO4]}, the protocol of socket.io-client {cv}.",
            ev,
        )
    if main.client_ok is False:
        refused = main.refusal
        got = f" ({u.status_line(refused)})" if refused is not None else ""
        return Verdict(
            Status.FAIL,
            "socket.io-client 2 cannot talk to this Socket.IO 3/4 server",
            f"{where} speak{_s(where)} {SPEECH_WORDS[EIO4]} and refuse{_s(where)} the EIO=3 that "
            f"socket.io-client 2.x sends{got}: 2.x clients never connect, because `allowEIO3` is off.",
            ev + ([u.probe_ev(refused)] if refused is not None else []),
            Fix(
                summary=f"Turn on Engine.IO 3 support on the server while 2.x clients remain, {_ALLOW_EIO3}; "
                "or upgrade the clients to socket.io-client 4 and check them with --client-version 4."
            ),
        )
    return Verdict(
        Status.PASS,
        "",
        f"{where} speak{_s(where)} {SPEECH_WORDS[EIO4]} and answer{_s(where)} the EIO=3 of socket.io-client "
        "2.x too (`allowEIO3` is on).",
        ev,
    )


def _eio3(facts: Facts, main: Speech, ev: list[Evidence], where: str, cv: int) -> Verdict:
    if cv == 2:
        return Verdict(
            Status.PASS,
            "",
            f"{where} speak{_s(where)} {SPEECH_WORDS[EIO3]} (or Socket.IO 3/4 with `allowEIO3`), the protocol "
            "of socket.io-client 2.",
            ev,
        )
    asked = f"EIO={eio_of(cv)}"
    return Verdict(
        Status.FAIL,
        f"socket.io-client {cv} cannot talk to this Socket.IO 2 server",
        f"{where} answer{_s(where)} even {asked} with an Engine.IO 3 payload (`<length>:0{{…}}`): a Socket.IO "
        f'2.x server, which socket.io-client {cv} cannot talk to: polling clients fail with "server error", '
        f'websocket-only ones with "{_V2_MESSAGE}". socket.io-client 2.x would connect (the diagnosis here '
        "spoke Engine.IO 3 to it).",
        ev,
        Fix(
            summary="Upgrade the server to socket.io 4 with `allowEIO3: true` in its options while 2.x clients "
            "remain: it serves both; or pin the clients to socket.io-client 2.x and check them with "
            "--client-version 2."
        ),
    )


def _plain(facts: Facts, main: Speech, ev: list[Evidence], where: str, *, websocket: bool) -> Verdict:
    ex = main.shown_by
    frame = facts.websocket.foreign_frame if facts.websocket is not None else None
    is_are = "is" if _s(where) else "are"
    if websocket:
        lib = {NODE_WS: " (Node `ws`)", PY_WEBSOCKETS: " (python `websockets`)"}.get(
            ex.answered_by if ex is not None else "", ""
        )
        seen = []
        if ex is not None and ex.status == 426:
            seen.append(f"plain HTTP gets {ex.status} {ex.reason}".rstrip())
        if frame:
            seen.append(f"a WebSocket gets 101 and `{frame[:80]}` instead of an Engine.IO open packet")
        sentence = (
            f"{where} {is_are} a plain WebSocket server{lib}, not Socket.IO: "
            f'{"; ".join(seen) or "no Engine.IO answer"}. socket.io-client fails against it: "xhr poll error" '
            'with polling, "server error" over WebSocket.'
        )
        fix = Fix(
            summary="Connect with a plain WebSocket client instead of socket.io-client: `new WebSocket('wss://HOST/"
            "PATH')` in a browser, the `ws` package in Node; or run a Socket.IO server, socket.io 4, behind this "
            "location if the clients speak Socket.IO."
        )
        title = "Not Socket.IO: a plain WebSocket server"
    else:
        shown = f": {u.status_line(ex)[:80]}" if ex is not None else ""
        sentence = (
            f"{where} answer{_s(where)} the Engine.IO handshake with plain HTTP{shown}, not an Engine.IO open "
            "packet: no Socket.IO server answers at that path."
        )
        fix = Fix(
            summary="Point the location at the Socket.IO server's path, e.g. /socket.io/, or run one there."
        )
        title = "Not Socket.IO: plain HTTP answers the handshake"
    return Verdict(Status.FAIL, title, sentence, ev, fix)


def _mixed(facts: Facts, known: list[Speech]) -> Verdict:
    parts = "; ".join(f"{_name(s.where)}: {SPEECH_WORDS[s.kind]}" for s in known)
    return Verdict(
        Status.FAIL,
        "The servers do not all speak the same protocol",
        f"The servers behind one location answer in different protocols — {parts} —: a client is served by "
        "whichever the balancer picks, so the same client works or fails from one connection to the next.",
        _evidence(known),
        Fix(
            summary="Run the same Socket.IO major version on every backend; socket.io 4 with `allowEIO3: true` "
            "serves both 2.x and 4.x clients."
        ),
    )


def _unknown(facts: Facts, seen: _Seen) -> str:
    dead = u.endpoint_down(facts)
    if dead:
        return f"{dead}; no answer says what the server speaks"
    if facts.client is None and not seen.backends:
        return facts.unavailable.get(Fact.HANDSHAKE_BACKENDS) or NO_URL
    hs = u.proxy_handshake(facts)
    if hs is not None and hs.exchange.status is not None:
        return (
            f"no Engine.IO answer to tell what the server speaks: the handshake got {u.status_line(hs.exchange)} "
            f"from {u.who(hs.exchange)} (see route/upstream)"
        )
    return "no Engine.IO answer to tell what the server speaks (see route/upstream)"


def _name(where: str) -> str:
    return "through the proxy" if where == "proxy" else where.split("://", 1)[-1]


def _where_text(seen: _Seen, known: list[Speech]) -> str:
    """The subject: "The endpoint (through the proxy) and its 3 backends", "The backend 127.0.0.1:3350"."""
    backends = [s for s in known if s.where != "proxy"]
    proxy = any(s.where == "proxy" for s in known)
    n = len(backends)
    if proxy and n:
        return f"The endpoint and its {n} backend{'s' if n != 1 else ''}"
    if proxy:
        return "The endpoint (through the proxy)"
    return f"The backend {_name(backends[0].where)}" if n == 1 else f"The {n} backends"


def _s(where: str) -> str:
    """The verb's -s for a singular subject."""
    return "s" if where.startswith(("The endpoint (", "The backend ")) else ""


def _evidence(known: list[Speech]) -> list[Evidence]:
    out: list[Evidence] = []
    seen: set[int] = set()
    for s in known[:2]:
        if s.shown_by is not None and id(s.shown_by) not in seen:
            seen.add(id(s.shown_by))
            out.append(u.probe_ev(s.shown_by))
    return out


check = Flow(ID, TITLE, _where, None, _live, _combine)
