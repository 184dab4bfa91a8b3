"""`auth` (runbook issue "authentication failing"): does the server accept the client's CONNECT with its token?

The runbook calls this "not an nginx issue" and greps pm2 logs; the real answer is one Socket.IO CONNECT
(``40{"token":…}`` in ``auth``): ``40{"sid"}`` or ``44{"message"}`` with the server's own words. The most
common cause, an expired JWT, is read from the token itself (``exp``/``nbf``, decoded, never verified, never
printed). Header auth is explained too: ``Authorization``/``extraHeaders`` are HTTP headers, which browsers
cannot send on a WebSocket, so a server that reads only the header fails browser clients with
``transports: ['websocket']`` while curl/wscat (the runbook's tests) work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Verdict, skip
from wsdoctor.checks._util import Place
from wsdoctor.facts import ConnectProbe, Fact, Facts, LogEvent
from wsdoctor.report import Evidence, Finding, Fix, Status
from wsdoctor.routes import corrected_request
from wsdoctor.wire.jwt import JwtInfo, fmt_time, try_decode

ID = "auth"
TITLE = "Socket.IO CONNECT with the token"
NEEDS = (Fact.CONNECT, Fact.LOGS, Fact.HANDSHAKE_PROXY)

SOON = 300.0  # seconds: a token this close to expiry is worth a word
_FRESH_TOKEN = "Get a fresh token (log in again / re-issue it) and retry."


def check(facts: Facts, now: datetime | None = None) -> Finding:
    """The flow below, the token's exp/nbf judged at NOW (the current time unless a test pins it)."""
    when = now or datetime.now(UTC)
    return Flow(ID, TITLE, _where, lambda f, _p: _token(f, when), _live, _combine)(facts)


def _where(facts: Facts) -> Place:
    """The corrected request when the CONNECT was sent for it (the client's own request misses the proxied
    location): through the proxy, namespace "/", at the corrected path. Otherwise a Place without one."""
    cp, c = facts.connect, facts.client
    if cp is None or cp.where != "proxy" or cp.namespace != "/" or c is None or c.namespace == "/":
        return Place(None)
    fix = corrected_request(facts)
    if fix is None or not cp.exchanges or not urlsplit(cp.exchanges[0].url).path.startswith(fix.path):
        return Place(None)
    return Place(fix.route, corrected=fix.path)


# --- "config" half: what the client sends, judged without a network -----------------------------------------


@dataclass
class _Token:
    jwt: JwtInfo | None  # the token decoded, never verified (None: no token, or not a JWT)
    problem: tuple[str, str] | None  # (title, sentence) when its claims say the server must refuse it
    expires_in: float | None  # seconds left before exp
    header_only: str | None  # why header auth fails browsers, when the client relies on it


def _token(facts: Facts, now: datetime) -> _Token:
    jwt = try_decode(facts.target.token)
    left = jwt.exp.timestamp() - now.timestamp() if jwt is not None and jwt.exp is not None else None
    return _Token(jwt, _jwt_problem(jwt, now), left, _header_note(facts))


# --- live half: the CONNECT with the token, and the backend's log ---------------------------------------


@dataclass
class _Seen:
    connect: ConnectProbe | None
    logs: list[LogEvent]  # backend log lines about authentication


def _live(facts: Facts, place: Place) -> _Seen:
    return _Seen(facts.connect, u.logs_for(facts, ID))


# --- the verdict ----------------------------------------------------------------------------------------


def _combine(facts: Facts, place: Place, tok: _Token, seen: _Seen) -> Verdict:
    cp, logs, jwt, jwt_problem = seen.connect, seen.logs, tok.jwt, tok.problem
    if cp is None:
        return _unsent(facts, tok, logs)
    token = facts.target.token
    ev: list[Evidence] = u.connect_ev(cp, facts.target.secrets(), 8, transport=True)
    if jwt is not None:
        ev.append(_jwt_ev(jwt))
    ev += u.log_evidence(logs)
    sent = _what_was_sent(cp, token)

    if cp.ok:
        if jwt_problem is not None:
            return Verdict(
                Status.WARN,
                "The server accepts an "
                + ("expired" if "expired" in jwt_problem[0] else "invalid")
                + " token",
                f"CONNECT to {cp.namespace} was accepted {sent}, although {jwt_problem[1][0].lower()}"
                f"{jwt_problem[1][1:].rstrip('.')}: the server does not check exp/nbf.",
                ev,
                Fix(summary="Verify exp/nbf on the server (e.g. jwt.decode checks them by default)."),
            )
        if tok.header_only:
            return Verdict(
                Status.WARN, "Header auth works here but not in browsers", tok.header_only, ev, _header_fix()
            )
        soon = ""
        if jwt is not None and jwt.exp is not None and tok.expires_in is not None and tok.expires_in < SOON:
            soon = f"; the token expires in {tok.expires_in:.0f} s ({fmt_time(jwt.exp)})"
        direct = (
            f"; it went straight to the backend {cp.where}, because the request through nginx fails (see route)"
            if cp.where != "proxy"
            else ""
        )
        return Verdict(
            Status.PASS,
            TITLE,
            f"CONNECT to namespace {cp.namespace} over {cp.transport} was accepted {sent}{soon}{direct}.",
            ev,
        )

    msg = cp.refused_message
    if msg is not None and u.refuses_namespace(msg) and cp.namespace != "/":
        return skip(
            f"the server refused namespace {cp.namespace} as unknown ({msg!r}), so the token could not be tested "
            "(see client)",
            ev,
        )
    if msg is not None:
        at = "" if cp.where == "proxy" else f" at the backend {cp.where} (nginx's route fails, see route)"
        summary = f"The server refused the CONNECT to {cp.namespace}{at} ({sent}) with {str(msg)!r}"
        if jwt_problem is not None:
            summary += f": {jwt_problem[1][0].lower()}{jwt_problem[1][1:]}"
            title = jwt_problem[0]
            fix = Fix(summary=_FRESH_TOKEN)
        elif not token:
            summary += ": no token was given — pass it with --token-env VAR."
            title = "The server wants a token"
            fix = Fix(summary="Run again with --token-env VAR (the token goes in the CONNECT auth payload).")
        else:
            summary += (
                f": the JWT is in date ({jwt.describe_times()}) but" if jwt else ": the token is"
            ) + " not accepted — check the signing secret/issuer the server expects."
            title = f"The server refuses the token: {str(msg)[:60]}"
            fix = Fix(
                summary="Issue the token with the secret/audience the server verifies, and make sure the client "
                "sends it in `auth: { token }`."
            )
        if tok.header_only:
            summary += " " + tok.header_only
            fix = _header_fix()
        return Verdict(Status.FAIL, title, summary.rstrip(".") + ".", ev, fix)

    # No ack and no refusal: the CONNECT never got an answer (transport failure).
    why = u.short_error(cp.error) or "no answer to CONNECT"
    if jwt_problem is not None:
        return Verdict(
            Status.FAIL,
            jwt_problem[0],
            jwt_problem[1] + f" The CONNECT itself failed: {why}.",
            ev,
            Fix(summary=_FRESH_TOKEN),
        )
    if logs:
        return Verdict(
            Status.WARN,
            "The backend log shows authentication errors",
            f"The CONNECT could not be completed, {why}, and the backend log shows "
            f"{u.plural(len(logs), 'authentication line')}, the last: {logs[-1].text.strip()[:160]}",
            ev,
            Fix(summary="Fix the transport first (see route/upstream/upgrade), then check the token."),
        )
    dead = u.endpoint_down(facts)
    if dead:
        return skip(f"the CONNECT could not be sent: {dead}", ev)
    see = (
        "sticky"
        if ("invalid session" in why.lower() or "session id unknown" in why.lower())
        else "route/upstream/upgrade"
    )
    return skip(f"the CONNECT could not be completed: {why}; see {see}", ev)


def _unsent(facts: Facts, tok: _Token, logs: list[LogEvent]) -> Verdict:
    """No CONNECT was sent: the token's own claims, or the backend's log, may still decide."""
    if tok.problem is not None:
        return Verdict(
            Status.FAIL,
            tok.problem[0],
            tok.problem[1] + " The server will refuse it.",
            [_jwt_ev(tok.jwt)] + u.log_evidence(logs),
            Fix(summary=_FRESH_TOKEN),
        )
    reason = u.fact_reason(
        facts, Fact.CONNECT, "no Socket.IO CONNECT was sent (needs --url and no --offline)"
    )
    if logs:
        return Verdict(
            Status.WARN,
            "The backend log shows authentication errors",
            f"{u.plural(len(logs), 'backend log line')} mention{'s' if len(logs) == 1 else ''} "
            f"authentication, the last: "
            f"{logs[-1].text.strip()[:160]}; no CONNECT was tested: {reason}.",
            u.log_evidence(logs),
            Fix(summary="Check the token the client sends against what the server expects (secret, expiry)."),
        )
    return skip(reason)


def _jwt_problem(jwt: JwtInfo | None, now: datetime) -> tuple[str, str] | None:
    if jwt is None:
        return None
    if jwt.expired(now):
        assert jwt.exp is not None
        ago = now.timestamp() - jwt.exp.timestamp()
        return (
            "The token has expired",
            f"The JWT expired at {fmt_time(jwt.exp)} ({_ago(ago)} ago).",
        )
    if jwt.not_yet_valid(now):
        assert jwt.nbf is not None
        return (
            "The token is not valid yet",
            f"The JWT is valid only from {fmt_time(jwt.nbf)} (nbf): the client's or server's clock is off.",
        )
    return None


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def _jwt_ev(jwt: JwtInfo | None) -> Evidence:
    assert jwt is not None
    alg = jwt.alg or "?"
    return Evidence(
        kind="probe",
        where="token (JWT, decoded without verifying)",
        text=f"alg {alg}; {jwt.describe_times()}",
    )


def _what_was_sent(cp: ConnectProbe, token: str | None) -> str:
    if not token or not (cp.sent_token or cp.sent_auth_header):
        return "without a token"
    parts = []
    if cp.sent_token:
        parts.append("the token in the CONNECT auth payload")
    if cp.sent_auth_header:
        parts.append("as an Authorization header")
    return "with " + " and ".join(parts)


def _header_note(facts: Facts) -> str | None:
    c = facts.client
    t = facts.target
    if not t.auth_header or c is None or c.transports != ("websocket",):
        return None
    return (
        "The token is also sent as an Authorization header, but browsers cannot set headers on a WebSocket "
        "(extraHeaders is ignored with transports: ['websocket']): the server must read "
        "socket.handshake.auth.token, not the header."
    )


def _header_fix() -> Fix:
    return Fix(
        summary="Send the token in `auth` and read it there on the server (Node: socket.handshake.auth.token; "
        "python-socketio: the `auth` argument of connect).",
        code="const socket = io(URL, { auth: { token }, transports: ['websocket'] });",
    )
