"""`client` (runbook issue 404): the request the client really sends, and the namespace it joins.

The runbook's own client, ``io('wss://api.x-or.cloud/dev/aiwm/chat')``, never requests ``/dev/aiwm/chat/…``:
socket.io-client takes the URL's path as the *namespace* and always requests its ``path`` option (default
``/socket.io/``), so it sends ``GET /socket.io/?EIO=4…``. This check shows that request and fails when the
"namespace" is really a path prefix that nginx routes to a Socket.IO location, i.e. when it belongs in the
``path`` option. Live, a CONNECT refused with "Invalid namespace" confirms it from the server's side.
"""

from __future__ import annotations

from dataclasses import replace

from wsdoctor.checks import _util as u
from wsdoctor.checks._flow import Flow, Verdict, needs_client, skip
from wsdoctor.checks._util import Place
from wsdoctor.facts import ConnectProbe, Fact, Facts
from wsdoctor.report import Evidence, Fix, Status
from wsdoctor.routes import corrected_request, proxied, route_for
from wsdoctor.wire.client import DEFAULT_PATH, ClientRequest, client_code, js_string

ID = "client"
TITLE = "Client URL and path"
NEEDS = (Fact.CONFIG, Fact.CONNECT)

# --- config half: the runbook trap, a namespace that nginx routes as a path prefix -----------------------


def _config(facts: Facts, place: Place) -> Verdict | None:
    """The namespace is a prefix that nginx routes to another (proxied) location: it belongs in `path`."""
    c = facts.client
    fixed = corrected_request(facts)
    if c is None or fixed is None:
        return None
    actual = route_for(facts)
    wanted_path, wanted = fixed.path, fixed.route
    config = facts.config
    assert config is not None and wanted.location is not None
    loc = wanted.location
    evidence: list[Evidence] = u.cfg_lines_ev(
        config, [loc, *([wanted.proxy_pass] if wanted.proxy_pass else [])]
    )
    if actual is None or actual.location is None:
        outcome = "which no location takes (nginx answers 404)"
    elif proxied(actual):
        outcome = f"which goes to {u.loc_label(actual.location)} instead"
    else:
        outcome = f"which {u.loc_label(actual.location)} does not proxy"
    upstream = (
        f"{wanted.upstream_target}{wanted.upstream_uri}" if wanted.upstream_uri else wanted.upstream_target
    )
    code = client_code(c.origin(), wanted_path, "/", c.transports, _has_token(facts))
    return Verdict(
        Status.FAIL,
        f"The client joins namespace {c.namespace} instead of requesting {wanted_path}",
        f"{_io_call(c)} joins namespace {c.namespace} and sends {c.request_line()}, {outcome}; "
        f"the prefix {c.namespace.rstrip('/')}/ is routed by {u.loc_label(loc)}, so it belongs in the `path` option.",
        evidence,
        Fix(
            summary=f"Put the prefix in `path`: the client then sends GET {wanted_path}?{c.query}, which "
            f"{u.loc_name(loc)} proxies to {upstream}; if the backend uses a namespace of its own, "
            "append it to the URL.",
            code=code,
        ),
    )


# --- live half: the CONNECT to the namespace ----------------------------------------------------------


def _live(facts: Facts, place: Place) -> ConnectProbe | None:
    return facts.connect


def _namespace_refused(cp: ConnectProbe | None) -> str | None:
    """The server's refusal of the namespace as unknown, in its words, or None."""
    if cp is None or cp.ok or not cp.refused_message:
        return None
    msg = str(cp.refused_message)
    return msg if u.refuses_namespace(msg) else None


# --- the verdict ----------------------------------------------------------------------------------------


def _combine(facts: Facts, place: Place, trap: Verdict | None, cp: ConnectProbe | None) -> Verdict:
    c = facts.client
    if c is None:
        return skip(place.why or "")
    if c.raw:
        return _raw(c)
    ns_refused = _namespace_refused(cp)
    if trap is not None:
        if ns_refused is not None and cp is not None:
            return replace(trap, evidence=trap.evidence + u.connect_ev(cp, facts.target.secrets(), 6))
        return trap
    if ns_refused is not None and c.namespace != "/":
        assert cp is not None
        fixed_path = c.namespace.rstrip("/") + c.path
        return Verdict(
            Status.FAIL,
            f"The server has no namespace {c.namespace}",
            f"{_io_call(c)} joins namespace {c.namespace} and the server refused it with {ns_refused!r}; the URL's "
            f"path is a namespace, not a route — if it is the proxy prefix, move it into `path`.",
            u.connect_ev(cp, facts.target.secrets(), 6),
            Fix(
                summary=f"Connect to the default namespace and put the prefix in `path` (requests {fixed_path}).",
                code=client_code(c.origin(), fixed_path, "/", c.transports, _has_token(facts)),
            ),
        )

    if c.namespace.endswith("/") and c.namespace != "/":
        return Verdict(
            Status.WARN,
            f"Namespace {c.namespace} ends with a slash",
            f"{_io_call(c)} joins namespace {c.namespace!r}, which a server that defines "
            f"{c.namespace.rstrip('/')!r} does not know; drop the trailing slash.",
            fix=Fix(
                summary="Drop the trailing slash from the namespace.",
                code=client_code(
                    c.origin(), c.path, c.namespace.rstrip("/"), c.transports, _has_token(facts)
                ),
            ),
        )

    summary = f"{_io_call(c)} sends {c.request_line()} to {c.netloc} and joins namespace {c.namespace}"
    if cp is not None and cp.ok:
        return Verdict(Status.PASS, TITLE, summary + "; the server accepted that namespace.")
    if c.namespace != "/" and facts.config is None and c.path == DEFAULT_PATH and c.namespace.count("/") >= 2:
        return Verdict(
            Status.WARN,
            f"Namespace {c.namespace} looks like a path prefix",
            summary
            + f"; if the proxy routes {c.namespace.rstrip('/')}/ to the service, the prefix belongs in "
            "`path`; --nginx-conf would decide.",
            fix=Fix(
                summary="If the prefix is a proxy route, pass it as `path` and connect to the default namespace.",
                code=client_code(
                    c.origin(), c.namespace.rstrip("/") + c.path, "/", c.transports, _has_token(facts)
                ),
            ),
        )
    if c.namespace != "/":
        summary += f"; the server must define namespace {c.namespace}"
    return Verdict(Status.PASS, TITLE, summary + ".")


def _io_call(c: ClientRequest) -> str:
    opts = []
    if c.path != DEFAULT_PATH:
        opts.append(f"path: {js_string(c.path.rstrip('/'))}")
    if tuple(c.transports) != ("polling", "websocket"):
        opts.append("transports: [" + ", ".join(js_string(t) for t in c.transports) + "]")
    return f"io({js_string(c.url)}" + (", {" + ", ".join(opts) + "})" if opts else ")")


def _has_token(facts: Facts) -> bool:
    t = facts.target
    return bool(t.token or t.token_env)


def _raw(c: ClientRequest) -> Verdict:
    request = c.request_line()
    if "EIO=" not in c.raw_query:
        fixed = c.path.rstrip("/") + "/socket.io/?EIO=4&transport=" + c.first_transport
        return Verdict(
            Status.WARN,
            "The raw request is not an Engine.IO request",
            f"{request} to {c.netloc} carries no EIO/transport parameters, so an Engine.IO server answers it with "
            "400 or 404; request the engine path with ?EIO=4&transport=….",
            fix=Fix(
                summary=f"Request the Engine.IO endpoint, e.g. {fixed}, or use socket.io-client with `path`.",
                code=f"wscat -c {js_string(c.ws_url_for().split('?')[0].rstrip('/') + '/socket.io/?EIO=4&transport=websocket')}",
            ),
        )
    return Verdict(
        Status.PASS,
        TITLE,
        f"Raw Engine.IO request {request} to {c.netloc}: no socket.io-client URL rules apply, namespace /.",
    )


check = Flow(ID, TITLE, needs_client, _config, _live, _combine)
