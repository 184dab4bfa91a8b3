"""The client's route through the config: the one place where facts meet the routing engine.

Both the gatherers (which backends to probe, which location's logs to read) and the checks (what nginx does
with the client's request) ask the same questions; they ask them here so the answers agree. The engine
(``nginx.routing``) knows nothing of facts; this module turns a ``Facts`` into the engine's questions and
keeps the answers on the ``Config`` they were computed from (``Config.memo``).
"""

from __future__ import annotations

from dataclasses import dataclass

from wsdoctor.facts import Facts
from wsdoctor.nginx.routing import Route, route


def route_for(facts: Facts) -> Route | None:
    """The route of the client's first request (its first transport, or the raw request as given).

    Host is ``--server-name`` or the URL's host; memoised on the configuration per request.
    """
    config, client = facts.config, facts.client
    if config is None or client is None:
        return None
    uri = client.request_uri()
    headers = {"Upgrade": "websocket", "Connection": "Upgrade"} if "transport=websocket" in uri else {}
    return _route(facts, uri, headers)


def route_uri(facts: Facts, uri: str) -> Route | None:
    """The route of another request URI to the same host/port as the client (what-if questions)."""
    if facts.config is None or facts.client is None:
        return None
    return _route(facts, uri, {})


def _route(facts: Facts, uri: str, headers: dict[str, str]) -> Route:
    config, client = facts.config, facts.client
    assert config is not None and client is not None
    host = facts.target.server_name or client.host
    key = ("route", host, client.port, client.scheme, uri, tuple(headers.items()))
    return config.memo(key, lambda: route(config, host, client.port, uri, client.scheme, headers=headers))


def proxied(r: Route | None) -> bool:
    """The request goes to a backend (a location with proxy_pass, no return, no 301)."""
    return (
        r is not None
        and r.location is not None
        and r.proxy_pass is not None
        and r.redirect is None
        and r.return_status is None
    )


@dataclass
class Corrected:
    """The request the client should send when its URL's path is a proxy prefix, not a namespace."""

    path: str  # "/dev/aiwm/chat/socket.io/"
    route: Route


def corrected_request(facts: Facts) -> Corrected | None:
    """The runbook trap, from nginx's side: the namespace is a prefix that nginx routes to a proxied location.

    ``io('wss://host/dev/aiwm/chat')`` requests ``/socket.io/…``; moved into ``path`` the prefix gives
    ``/dev/aiwm/chat/socket.io/…``. When that request reaches a proxied location the client's own does not,
    this is the location the `client` check names, and the one the config checks judge instead of skipping.
    """
    c = facts.client
    if c is None or facts.config is None or c.raw or c.namespace == "/":
        return None
    wanted_path = c.namespace.rstrip("/") + c.path
    wanted = route_uri(facts, f"{wanted_path}?{c.query}")
    if wanted is None or not proxied(wanted):
        return None
    actual = route_for(facts)
    if actual is not None and actual.location is wanted.location:
        return None  # one location takes both: the prefix is not a route of its own
    return Corrected(wanted_path, wanted)


def socketio_route(facts: Facts) -> Route | None:
    """The route the Socket.IO requests take: the client's own when it is proxied, else the corrected one's
    (the backends to probe and the logs to read are that location's), else the client's own (or None)."""
    r = route_for(facts)
    if r is not None and r.upstream_servers:
        return r
    fix = corrected_request(facts)
    return fix.route if fix is not None else r
