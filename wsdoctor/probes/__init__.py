"""Live probes: speak Engine.IO / Socket.IO / TLS to the proxy and the backends, and record what happens.

Every probe is a coroutine bounded by ``ctx.timeout`` per network exchange, returns its fact from
:mod:`wsdoctor.facts` (never raises for network trouble: ``error`` and ``stage`` say what went wrong and
where), records the exact requests and answers (bodies capped, secrets masked) and who answered. Probes
keep no global state: any number run concurrently on one event loop.

    ctx = ProbeContext(timeout=5, ca_file=..., token=...).prepare()
    await handshake("http://127.0.0.1:3350", "/chat/socket.io/", ctx=ctx, where="http://127.0.0.1:3350")
    await handshake("https://api.example/socket.io/?EIO=4&transport=polling", ctx=ctx)   # full URL
"""

from wsdoctor.probes.context import ProbeConfigError, ProbeContext
from wsdoctor.probes.polling import cors, handshake, sticky
from wsdoctor.probes.sio import connect
from wsdoctor.probes.tlsprobe import tls
from wsdoctor.probes.tunnel import hold, upgrade, websocket

__all__ = [
    "ProbeConfigError",
    "ProbeContext",
    "connect",
    "cors",
    "handshake",
    "hold",
    "sticky",
    "tls",
    "upgrade",
    "websocket",
]
