"""The probe gatherers: the public URL through the proxy (handshake, websocket, upgrade, CONNECT, sticky,
hold, TLS, CORS) and each backend of the upstream the route reaches (from the proxy host through the run's
session when ``--ssh`` is given, so what is tested is what nginx reaches).

All start at once; each fact is pending until its probe is done, whatever happens. When the client's own
request misses the Socket.IO location (the runbook's namespace trap), the backends probed and the CONNECT
judged are those of the corrected request, the one the `client` check names.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from wsdoctor import probes
from wsdoctor.errors import InputError
from wsdoctor.facts import PROBE_FACTS, ConnectProbe, Exchange, Fact, Facts, Gatherer, Handshake
from wsdoctor.probes import ProbeConfigError, ProbeContext
from wsdoctor.remote.session import RemoteSession
from wsdoctor.routes import corrected_request, socketio_route
from wsdoctor.target import Target


class _Countdown:
    """Sets EVENT when every probe it counted has finished (at once when it counted none)."""

    def __init__(self, event: asyncio.Event) -> None:
        self.event = event
        self.left = 0

    def add(self) -> None:
        self.left += 1

    def finished(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.event.set()


def _probe(
    facts: Facts, name: str, run: Callable[[], Awaitable[None]], countdown: _Countdown | None = None
) -> Gatherer:
    """A gatherer for one probe fact: pending until it is done, whatever happens."""
    facts.pending.add(name)
    if countdown is not None:
        countdown.add()

    async def gatherer(f: Facts) -> None:
        try:
            await run()
        finally:
            f.pending.discard(name)
            if countdown is not None:
                countdown.finished()

    gatherer.__name__ = f"probe {name}"
    return gatherer


def _no_tunnel(probe: ConnectProbe) -> bool:
    """The CONNECT never got a WebSocket to travel on: no 101 (refused, 400, 404, 502, no answer)."""
    if probe.ok or probe.refused_message is not None:
        return False
    return not probe.exchanges or probe.exchanges[0].status != 101


def probe_gatherers(
    target: Target,
    facts: Facts,
    session: RemoteSession | None,
    config_ready: asyncio.Event,
    probes_done: asyncio.Event,
) -> list[Gatherer]:
    """The probes for TARGET; PROBES_DONE is set when every probe through the proxy has finished (the logs
    are read after it). SESSION carries the backend probes with ``--ssh`` (None: straight from here)."""
    try:
        ctx = ProbeContext.from_target(target).prepare()
    except ProbeConfigError as e:
        raise InputError(str(e)) from None
    if target.server_name:
        ctx.host_header = target.server_name
    gs: list[Gatherer] = []
    through_proxy = _Countdown(probes_done)
    c = facts.client
    public = tuple(f for f in PROBE_FACTS if f is not Fact.HANDSHAKE_BACKENDS)  # the public URL's probes
    if c is None:
        for name in public:
            facts.unavailable[name] = "no --url given: nothing to probe through the proxy"
    else:
        polling_url, ws_url = c.url_for("polling"), c.url_for("websocket")
        uses_polling, uses_ws = "polling" in c.transports, "websocket" in c.transports
        # The Engine.IO version the server answers the proxy handshake in: the CONNECT and the held tunnel
        # speak it (Socket.IO 2 has no CONNECT payload and wants client pings). The polling probes find it
        # out from their own handshakes and wait for nobody.
        spoken = asyncio.Event()
        spoken_eio: list[int] = []

        async def handshake() -> None:
            try:
                hs = await probes.handshake(polling_url, ctx=ctx, where="proxy")
                facts.handshakes["proxy"] = hs
            finally:
                answered = facts.handshakes.get("proxy")
                found = answered.spoken if answered is not None else None
                spoken_eio.append(found.server_eio or ctx.eio if found is not None else ctx.eio)
                spoken.set()

        async def eio() -> int:
            try:
                await asyncio.wait_for(spoken.wait(), ctx.timeout + 1.0)
            except TimeoutError:
                return ctx.eio
            return spoken_eio[0]

        async def websocket() -> None:
            facts.websocket = await probes.websocket(ws_url, ctx=ctx, where="proxy", eio=await eio())

        async def upgrade() -> None:
            facts.upgrade = await probes.upgrade(polling_url, ctx=ctx, where="proxy")

        # The token is judged over one WebSocket when the client may use it: a polling CONNECT spans several
        # requests, and without sticky sessions they land on different backends (that is `sticky`'s finding).
        connect_transport = "websocket" if uses_ws else "polling"

        async def connect() -> None:
            speak = await eio()
            probe = await probes.connect(
                c.url_for(connect_transport),
                ctx=ctx,
                where="proxy",
                namespace=c.namespace,
                transport=connect_transport,
                eio=speak,
            )
            if connect_transport == "websocket" and uses_polling and _no_tunnel(probe):
                # The client would fall back to polling (the upgrade is upgrade's finding): the token still
                # deserves a verdict, so send the CONNECT the way the client then would.
                probe = await probes.connect(
                    polling_url, ctx=ctx, where="proxy", namespace=c.namespace, transport="polling", eio=speak
                )
            if not probe.ok and probe.refused_message is None and not probe.packets:
                # The runbook's namespace trap: the client's own request misses the proxied location. The
                # token is judged on the corrected client (the prefix moved into `path`, namespace "/"), the
                # request the `client` check names; auth says so ("For the corrected request …").
                fixed = await _connect_corrected(facts, ctx, config_ready, connect_transport, uses_polling)
                if fixed is not None:
                    facts.connect = fixed
                    return
                # No Engine.IO session through the proxy at all (a 404, a 502): the route is route's and
                # upstream's finding, but the token can still be judged by a backend itself.
                direct = await _connect_at_a_backend(facts, ctx, c.namespace, backends_done, session)
                if direct is not None:
                    probe = direct
            facts.connect = probe

        async def sticky() -> None:
            facts.sticky = await probes.sticky(polling_url, ctx=ctx, where="proxy", namespace=c.namespace)

        async def hold() -> None:
            assert target.hold is not None
            held = await probes.hold(
                ws_url, seconds=target.hold, ctx=ctx, where="proxy", namespace=c.namespace, eio=await eio()
            )
            if held.closed:
                # Closed early: each backend asked again at once, so that a backend that died under the
                # tunnel is named (its handshake at the start said it was up).
                await backends_done.wait()
                held.backends_after = await _backends_again(facts, ctx, session if target.ssh else None)
            facts.hold = held

        async def tls() -> None:
            facts.tls = await probes.tls(c.host, c.port, ctx=ctx, server_hostname=target.server_name)

        async def cors() -> None:
            facts.cors = await probes.cors(
                polling_url, origin=f"{c.scheme}://{c.netloc}", ctx=ctx, where="proxy"
            )

        gs.append(_probe(facts, Fact.HANDSHAKE_PROXY, handshake, through_proxy))
        gs.append(_probe(facts, Fact.WEBSOCKET, websocket, through_proxy))
        if uses_polling and uses_ws:
            gs.append(_probe(facts, Fact.UPGRADE, upgrade, through_proxy))
        else:
            facts.unavailable[Fact.UPGRADE] = (
                "the client uses one transport only: no polling→websocket upgrade to try"
            )
        gs.append(_probe(facts, Fact.CONNECT, connect, through_proxy))
        if uses_polling:
            gs.append(_probe(facts, Fact.STICKY, sticky, through_proxy))
        else:
            facts.unavailable[Fact.STICKY] = (
                "websocket-only client: each session is one connection, nothing to keep sticky"
            )
        if target.hold:
            gs.append(_probe(facts, Fact.HOLD, hold, through_proxy))
        else:
            facts.unavailable[Fact.HOLD] = (
                "no tunnel held (give --hold SECONDS to keep one open and catch drops)"
            )
        if c.secure:
            gs.append(_probe(facts, Fact.TLS, tls, through_proxy))
        else:
            facts.unavailable[Fact.TLS] = f"{c.scheme}:// URL: no TLS on the public side"
        gs.append(_probe(facts, Fact.CORS, cors, through_proxy))
    backends_done = asyncio.Event()

    async def backends() -> None:
        try:
            await _backend_handshakes(target, facts, ctx, config_ready, session)
        finally:
            backends_done.set()

    gs.append(_probe(facts, Fact.HANDSHAKE_BACKENDS, backends))
    if through_proxy.left == 0:
        probes_done.set()
    return gs


async def _backend_handshakes(
    target: Target,
    facts: Facts,
    ctx: ProbeContext,
    config_ready: asyncio.Event,
    session: RemoteSession | None,
) -> None:
    """Each upstream server's Engine.IO handshake at the URI nginx sends (from the proxy host with --ssh)."""
    await config_ready.wait()
    route = None
    if facts.config is not None and facts.client is not None:
        # The client's own request may reach no upstream (the runbook's namespace trap): then the backends
        # probed are those of the location its corrected request reaches, the one the `client` check names.
        route = socketio_route(facts)
    if route is not None and route.upstream_uri and route.upstream_uri.startswith("/"):
        path = route.upstream_uri
    elif facts.client is not None:
        path = facts.client.request_uri("polling")
    else:
        path = "/socket.io/?EIO=4&transport=polling"
    if target.backends:
        bases = [b.rstrip("/") for b in target.backends]
    elif route is not None and route.upstream_servers:
        scheme = "https" if route.upstream_target.startswith("https") else "http"
        bases = [f"{scheme}://{hp}" for hp in route.upstream_servers if not hp.startswith("unix:")]
    else:
        why = (
            "no backends to probe: the route reaches no upstream (give --backend URL)"
            if route is not None
            else "no backends to probe: give --backend URL, or a config (--nginx-conf/--nginx-dump/--ssh) and --url"
        )
        facts.unavailable[Fact.HANDSHAKE_BACKENDS] = why
        return

    via = session if target.ssh else None  # without --ssh the backends are probed from here

    async def one(base: str) -> None:
        bctx = dataclasses.replace(ctx, host_header=None, server_hostname=None)
        if via is not None:
            u = urlsplit(base)
            port = u.port or (443 if u.scheme == "https" else 80)
            try:
                bctx.connect_to = await via.call(via.forward, u.hostname or "", port)
            except Exception as e:  # noqa: BLE001 - the proxy host cannot reach it: that is the finding
                # ForwardError: "root@lb1 could not connect to 172.16.2.100:3350: …" (a clause in summaries)
                msg = str(e).rstrip(".")
                ex = Exchange("GET", base + path, error=msg, stage="connect")
                facts.handshakes[base] = Handshake(where=base, exchange=ex, error=msg)
                return
        hs = await probes.handshake(base, path, ctx=bctx, where=base)
        if via is not None and hs.exchange.status is None and _dropped(via):
            # The probe's tunnel went down with the SSH connection: no fact about the backend itself.
            hs.error = hs.exchange.error = (
                f"the SSH connection to {via.target.ssh} dropped while this probe waited in its tunnel"
            )
            hs.exchange.stage = "connect"
        facts.handshakes[base] = hs
        if hs.exchange.status == 404:
            await _find_engine_path(facts, base, path, bctx)

    await asyncio.gather(*(one(b) for b in bases))


def _dropped(session: RemoteSession) -> bool:
    """The session's SSH connection has gone down (its forwards with it)."""
    runner = session.runner
    return runner is not None and not getattr(runner, "connected", True)


async def _backends_again(facts: Facts, ctx: ProbeContext, via: RemoteSession | None) -> dict[str, Handshake]:
    """Every backend that answered its handshake at the start, asked again (the same path, the same way)."""
    bases = [b for b, hs in facts.handshakes.items() if b != "proxy" and hs.exchange.status is not None]

    async def one(base: str) -> tuple[str, Handshake]:
        hs = facts.handshakes[base]
        bctx = dataclasses.replace(ctx, host_header=None, server_hostname=None)
        u = urlsplit(hs.exchange.url)
        if via is not None:
            port = u.port or (443 if u.scheme == "https" else 80)
            try:
                bctx.connect_to = await via.call(via.forward, u.hostname or "", port)
            except Exception as e:  # noqa: BLE001 - the proxy host cannot reach it now: that is the answer
                msg = str(e).rstrip(".")
                return base, Handshake(where=base, exchange=Exchange("GET", base, error=msg, stage="connect"))
        path = u.path + (f"?{u.query}" if u.query else "")
        return base, await probes.handshake(base, path, ctx=bctx, where=base, eio=hs.eio)

    return dict(await asyncio.gather(*(one(b) for b in bases)))


async def _connect_corrected(
    facts: Facts, ctx: ProbeContext, config_ready: asyncio.Event, transport: str, uses_polling: bool
) -> ConnectProbe | None:
    """The CONNECT of the corrected client through the proxy (the URL's origin, ``path`` = the corrected
    request's path, namespace "/"), or None when there is no corrected request or it gets no verdict either."""
    await config_ready.wait()
    fix = corrected_request(facts)
    if fix is None or facts.client is None:
        return None
    fixed = dataclasses.replace(facts.client, path=fix.path, namespace="/")
    probe = await probes.connect(
        fixed.url_for(transport), ctx=ctx, where="proxy", namespace="/", transport=transport
    )
    if transport == "websocket" and uses_polling and _no_tunnel(probe):
        probe = await probes.connect(
            fixed.url_for("polling"), ctx=ctx, where="proxy", namespace="/", transport="polling"
        )
    return probe if probe.ok or probe.refused_message is not None or probe.packets else None


async def _connect_at_a_backend(
    facts: Facts,
    ctx: ProbeContext,
    namespace: str,
    backends_done: asyncio.Event,
    session: RemoteSession | None,
) -> ConnectProbe | None:
    """The CONNECT sent straight to a backend whose Engine.IO answered (at the path nginx sends, or where
    it really lives), through the proxy host with --ssh; None when there is none or it gives no session."""
    await backends_done.wait()
    found = [(base, hs) for base, hs in facts.handshakes.items() if base != "proxy" and hs.spoken is not None]
    found += [(hs.where, hs) for hs in facts.path_probes.values() if hs.spoken is not None]
    if not found:
        return None
    base, hs = found[0]
    hs = hs.spoken or hs
    bctx = dataclasses.replace(ctx, host_header=None, server_hostname=None)
    if session is not None and session.target.ssh:
        u = urlsplit(base)
        try:
            port = u.port or (443 if u.scheme == "https" else 80)
            bctx.connect_to = await session.call(session.forward, u.hostname or "", port)
        except Exception:  # noqa: BLE001 - it answered a moment ago; without a tunnel there is no verdict
            return None
    path = urlsplit(hs.exchange.url).path
    probe = await probes.connect(
        base, path, ctx=bctx, where=base, namespace=namespace, transport="websocket", eio=hs.server_eio
    )
    return probe if probe.ok or probe.refused_message is not None or probe.packets else None


def engine_path_candidates(*paths: str) -> list[str]:
    """Where a backend's Engine.IO may live, from the paths we know: every suffix ending in socket.io/.

    /dev/aiwm/chat/socket.io/ → /aiwm/chat/socket.io/, /chat/socket.io/, /socket.io/ (plus the default).
    """
    out: list[str] = []
    for p in paths:
        p = p.split("?", 1)[0]
        if not p.endswith("/"):
            p += "/"
        parts = [x for x in p.split("/") if x]
        for i in range(len(parts)):
            cand = "/" + "/".join(parts[i:]) + "/"
            if cand not in out:
                out.append(cand)
    if "/socket.io/" not in out:
        out.append("/socket.io/")
    return out


async def _find_engine_path(facts: Facts, base: str, tried: str, ctx: ProbeContext) -> None:
    """The backend answered 404 at the URI nginx sends: ask it at the other plausible paths, concurrently."""
    known = [tried]
    if facts.client is not None:
        known.append(facts.client.request_path)
    cands = [c for c in engine_path_candidates(*known) if c != tried.split("?", 1)[0]][:8]
    results = await asyncio.gather(*(probes.handshake(base, c, ctx=ctx, where=base) for c in cands))
    for cand, hs in zip(cands, results, strict=True):
        if hs.spoken is not None:
            facts.path_probes[base + cand] = hs
            return
