"""`auth` (runbook issue "authentication failing"): does the server accept the client's CONNECT with its token?

The runbook calls this "not an nginx issue" and greps pm2 logs; the real answer is one Socket.IO CONNECT
(``40{"token":…}`` in ``auth``): ``40{"sid"}`` or ``44{"message"}`` with the server's own words. The most
common cause, an expired JWT, is read from the token itself (``exp``/``nbf``, decoded, never verified, never
printed). Header auth is explained too: ``Authorization``/``extraHeaders`` are HTTP headers, which browsers
cannot send on a WebSocket, so a server that reads only the header fails browser clients with
``transports: ['websocket']`` while curl/wscat (the runbook's tests) work.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from wsdoctor.checks import _util as u
from wsdoctor.facts import ConnectProbe, Facts
from wsdoctor.report import Evidence, Finding, Fix, Status, redact
from wsdoctor.wire.jwt import JwtInfo, fmt_time, try_decode

ID = "auth"
TITLE = "Socket.IO CONNECT with the token"
NEEDS = ("connect", "logs", "handshake:proxy")

_NAMESPACE_REFUSALS = ("invalid namespace", "unable to connect")
SOON = 300.0  # seconds: a token this close to expiry is worth a word


def check(facts: Facts, now: datetime | None = None) -> Finding:
    now = now or datetime.now(UTC)
    t = facts.target
    token = t.token
    jwt = try_decode(token)
    jwt_problem = _jwt_problem(jwt, now)
    logs = u.logs_for(facts, ID)
    cp = facts.connect
    header_only = _header_note(facts)

    if cp is None:
        if jwt_problem is not None:
            # The token's own claims decide without any network.
            return u.finding(
                ID,
                Status.FAIL,
                jwt_problem[0],
                jwt_problem[1] + " The server will refuse it.",
                [_jwt_ev(jwt)] + u.log_evidence(logs),
                Fix(summary="Get a fresh token (log in again / re-issue it) and retry."),
            )
        reason = u.fact_reason(
            facts, "connect", "no Socket.IO CONNECT was sent (needs --url and no --offline)"
        )
        if logs:
            return u.finding(
                ID,
                Status.WARN,
                "The backend log shows authentication errors",
                f"{u.plural(len(logs), 'backend log line')} mention{'s' if len(logs) == 1 else ''} "
                f"authentication, the last: "
                f"{logs[-1].text.strip()[:160]}; no CONNECT was tested: {reason}.",
                u.log_evidence(logs),
                Fix(
                    summary="Check the token the client sends against what the server expects (secret, expiry)."
                ),
            )
        return u.skip(ID, TITLE, reason)

    say = _corrected(facts, cp).say
    ev: list[Evidence] = _connect_ev(cp, t.secrets())
    if jwt is not None:
        ev.append(_jwt_ev(jwt))
    ev += u.log_evidence(logs)
    sent = _what_was_sent(cp, token)

    if cp.ok:
        if jwt_problem is not None:
            return u.finding(
                ID,
                Status.WARN,
                "The server accepts an "
                + ("expired" if "expired" in jwt_problem[0] else "invalid")
                + " token",
                say(
                    f"CONNECT to {cp.namespace} was accepted {sent}, although {jwt_problem[1][0].lower()}"
                    f"{jwt_problem[1][1:].rstrip('.')}: the server does not check exp/nbf."
                ),
                ev,
                Fix(summary="Verify exp/nbf on the server (e.g. jwt.decode checks them by default)."),
            )
        if header_only:
            return u.finding(
                ID,
                Status.WARN,
                "Header auth works here but not in browsers",
                say(header_only),
                ev,
                _header_fix(),
            )
        soon = ""
        if jwt is not None and jwt.exp is not None:
            left = jwt.exp.timestamp() - now.timestamp()
            if left < SOON:
                soon = f"; the token expires in {left:.0f} s ({fmt_time(jwt.exp)})"
        direct = (
            f"; it went straight to the backend {cp.where}, because the request through nginx fails (see route)"
            if cp.where != "proxy"
            else ""
        )
        return u.finding(
            ID,
            Status.PASS,
            TITLE,
            say(
                f"CONNECT to namespace {cp.namespace} over {cp.transport} was accepted {sent}{soon}{direct}."
            ),
            ev,
        )

    msg = cp.refused_message
    if msg is not None and any(s in str(msg).lower() for s in _NAMESPACE_REFUSALS) and cp.namespace != "/":
        return u.skip(
            ID,
            TITLE,
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
            fix = Fix(summary="Get a fresh token (log in again / re-issue it) and retry.")
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
        if header_only:
            summary += " " + header_only
            fix = _header_fix()
        return u.finding(ID, Status.FAIL, title, say(summary.rstrip(".") + "."), ev, fix)

    # No ack and no refusal: the CONNECT never got an answer (transport failure).
    why = u.short_error(cp.error) or "no answer to CONNECT"
    if jwt_problem is not None:
        return u.finding(
            ID,
            Status.FAIL,
            jwt_problem[0],
            say(jwt_problem[1] + f" The CONNECT itself failed: {why}."),
            ev,
            Fix(summary="Get a fresh token (log in again / re-issue it) and retry."),
        )
    if logs:
        return u.finding(
            ID,
            Status.WARN,
            "The backend log shows authentication errors",
            say(
                f"The CONNECT could not be completed, {why}, and the backend log shows "
                f"{u.plural(len(logs), 'authentication line')}, the last: {logs[-1].text.strip()[:160]}"
            ),
            ev,
            Fix(summary="Fix the transport first (see route/upstream/upgrade), then check the token."),
        )
    dead = u.endpoint_down(facts)
    if dead:
        return u.skip(ID, TITLE, f"the CONNECT could not be sent: {dead}", ev)
    see = (
        "sticky"
        if ("invalid session" in why.lower() or "session id unknown" in why.lower())
        else "route/upstream/upgrade"
    )
    return u.skip(ID, TITLE, f"the CONNECT could not be completed: {why}; see {see}", ev)


def _corrected(facts: Facts, cp: ConnectProbe) -> u.Place:
    """The corrected request when CP is the CONNECT gather sent for it (the client's own request misses the
    proxied location): through the proxy, namespace "/", at the corrected path. Otherwise a Place without one."""
    c = facts.client
    if cp.where != "proxy" or cp.namespace != "/" or c is None or c.namespace == "/" or not cp.exchanges:
        return u.Place(None)
    fix = u.corrected_request(facts)
    if fix is None or not urlsplit(cp.exchanges[0].url).path.startswith(fix.path):
        return u.Place(None)
    return u.Place(fix.route, corrected=fix.path)


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


def _connect_ev(cp: ConnectProbe, secrets: list[str]) -> list[Evidence]:
    """The CONNECT exchange and its packets, with the token removed (it travels in `40{"token":…}`)."""
    out: list[Evidence] = [u.probe_ev(ex, secrets) for ex in cp.exchanges[-1:]]
    if cp.packets:
        out.append(
            Evidence(
                kind="probe",
                where=f"CONNECT {cp.namespace} over {cp.transport} ({cp.where})",
                text=redact("\n".join(p[:300] for p in cp.packets[-8:]), secrets),
            )
        )
    return out
