"""Socket.IO packets, protocol v5 (socket.io 3/4, python-socketio 5) and v4 (socket.io 2.x), as text.

A Socket.IO packet travels inside an Engine.IO MESSAGE (``4`` + the text below). Layout
(socket.io-parser)::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]

- type: 0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR (v4: ERROR), 5 BINARY_EVENT, 6 BINARY_ACK;
- attachments: only for the binary types, the number of binary packets that follow;
- namespace: only when not ``/``; a comma always ends it (``41/admin,``); in a v4 CONNECT it may carry
  a query (``0/admin?token=abc,``), kept apart in :attr:`SioPacket.query`;
- ack id: decimal digits;
- data: JSON. v5 CONNECT carries the ``auth`` object (``40/admin,{"token":"…"}``) and the server answers
  ``40{"sid":"…"}`` or ``44{"message":"…","data":…}`` (python's unknown namespace: ``44/ns,"Unable to connect"``).
  v4 CONNECT has no payload, the server answers ``0`` or ``4"Not authorized"`` (ERROR, usually a string).

Payloads are validated like socket.io-parser's decoder does (a packet the real client would reject is a
:class:`~wsdoctor.wire.engineio.ProtocolError`), and decoding any text raises nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from wsdoctor.wire.engineio import ProtocolError, loads_json

VERSIONS = (4, 5)
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
_MAX_ID_DIGITS = 16
_MAX_ATTACHMENT_DIGITS = 10


class SioType(IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4  # "ERROR" in protocol v4
    BINARY_EVENT = 5
    BINARY_ACK = 6


ERROR = SioType.CONNECT_ERROR  # the v4 name of type 4
_BINARY = (SioType.BINARY_EVENT, SioType.BINARY_ACK)


@dataclass(frozen=True)
class SioPacket:
    """One Socket.IO packet; ``data`` None means the packet carries no JSON at all."""

    type: SioType
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    attachments: int = 0
    query: str = ""  # the query after the namespace of a v4 CONNECT ("token=abc")

    @property
    def event(self) -> str | None:
        """The event name of an EVENT packet (``42["instance",…]`` → "instance")."""
        if self.type in (SioType.EVENT, SioType.BINARY_EVENT) and isinstance(self.data, list) and self.data:
            first = self.data[0]
            return first if isinstance(first, str) else None
        return None

    @property
    def error_message(self) -> str | None:
        """The message of a CONNECT_ERROR / ERROR: the string itself or its ``message`` field."""
        if self.type != SioType.CONNECT_ERROR:
            return None
        if isinstance(self.data, str):
            return self.data
        if isinstance(self.data, dict):
            m = self.data.get("message")
            return m if isinstance(m, str) else None
        return None

    @property
    def error_data(self) -> Any:
        """The ``data`` field of a v5 CONNECT_ERROR object (Node's ``err.data``), else None."""
        if self.type == SioType.CONNECT_ERROR and isinstance(self.data, dict):
            return self.data.get("data")
        return None


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise ProtocolError(f"unsupported Socket.IO protocol version {version!r} (4 and 5 are known)")


def _dumps(data: Any) -> str:
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # lone surrogates: escape them like JSON.stringify does
        return json.dumps(data, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"data cannot be sent as JSON: {e}") from None


def encode(packet: SioPacket, *, version: int = 5) -> str:
    """The packet as text (what follows the Engine.IO ``4``)."""
    _check_version(version)
    _validate(packet.type, packet.data, version, has_data=packet.data is not None)
    out = str(int(packet.type))
    if packet.type in _BINARY:
        if packet.attachments < 0:
            raise ProtocolError("attachment count cannot be negative")
        out += f"{packet.attachments}-"
    elif packet.attachments:
        raise ProtocolError("only binary packets have attachments")
    ns = packet.namespace or "/"
    if not ns.startswith("/") or "," in ns or "?" in ns:
        raise ProtocolError(f"invalid namespace {ns!r}: it starts with '/' and holds no ',' or '?'")
    if packet.query and "," in packet.query:
        raise ProtocolError("a namespace query cannot contain ','")
    if ns != "/" or packet.query:
        out += ns + (f"?{packet.query}" if packet.query else "") + ","
    if packet.id is not None:
        if packet.id < 0 or len(str(packet.id)) > _MAX_ID_DIGITS:
            raise ProtocolError(f"invalid ack id {packet.id}")
        out += str(packet.id)
    if packet.data is not None:
        out += _dumps(packet.data)
    return out


def decode(text: str, *, version: int = 5) -> SioPacket:
    """Parse one Socket.IO packet (the text after the Engine.IO ``4``)."""
    _check_version(version)
    if not isinstance(text, str):
        raise ProtocolError("a Socket.IO packet is text")
    if not text:
        raise ProtocolError("empty Socket.IO packet")
    head = text[0]
    if head not in "0123456":
        raise ProtocolError(f"unknown Socket.IO packet type {head!r}")
    ptype = SioType(int(head))
    i = 1
    n = len(text)
    attachments = 0
    if ptype in _BINARY:
        start = i
        while i < n and text[i] != "-":
            i += 1
        digits = text[start:i]
        if i >= n or not digits.isdigit() or not digits.isascii() or len(digits) > _MAX_ATTACHMENT_DIGITS:
            raise ProtocolError("binary packet without a valid '<count>-' attachment header")
        attachments = int(digits)
        i += 1
    namespace = "/"
    query = ""
    if i < n and text[i] == "/":
        comma = text.find(",", i)
        end = n if comma == -1 else comma
        namespace = text[i:end]
        i = end + 1 if comma != -1 else n
        if "?" in namespace:
            namespace, query = namespace.split("?", 1)
    ack_id = None
    start = i
    while i < n and text[i].isascii() and text[i].isdigit():
        i += 1
    if i > start:
        if i - start > _MAX_ID_DIGITS:
            raise ProtocolError("ack id too long")
        ack_id = int(text[start:i])
    data = None
    has_data = i < n
    if has_data:
        data = loads_json(text[i:])
    _validate(ptype, data, version, has_data=has_data)
    return SioPacket(ptype, namespace, data, ack_id, attachments, query)


def _validate(ptype: SioType, data: Any, version: int, *, has_data: bool) -> None:
    """socket.io-parser's isPayloadValid (v5); v4 only refuses JSON null, like its tryParse."""
    if not has_data:
        return
    name = ptype.name
    if data is None:
        raise ProtocolError(f"invalid payload for {name}: null")
    if version == 4:
        return
    ok = True
    if ptype == SioType.CONNECT:
        ok = isinstance(data, dict)
    elif ptype == SioType.DISCONNECT:
        ok = False
    elif ptype == SioType.CONNECT_ERROR:
        ok = isinstance(data, str | dict)
    elif ptype in (SioType.EVENT, SioType.BINARY_EVENT):
        ok = (
            isinstance(data, list)
            and bool(data)
            and (
                (isinstance(data[0], int | float) and not isinstance(data[0], bool))
                or (isinstance(data[0], str) and data[0] not in RESERVED_EVENTS)
            )
        )
    elif ptype in (SioType.ACK, SioType.BINARY_ACK):
        ok = isinstance(data, list)
    if not ok:
        raise ProtocolError(f"invalid payload for {name}: {type(data).__name__}")


# --- the packets a probe sends ----------------------------------------------------------


def connect(namespace: str = "/", auth: dict[str, Any] | None = None, *, version: int = 5) -> str:
    """CONNECT to NAMESPACE: v5 carries ``auth`` in the packet, v4 has no payload (auth went in the query)."""
    if version == 4:
        return encode(SioPacket(SioType.CONNECT, namespace), version=4)
    return encode(SioPacket(SioType.CONNECT, namespace, auth if auth else None), version=5)


def event(name: str, *args: Any, namespace: str = "/", ack_id: int | None = None, version: int = 5) -> str:
    return encode(SioPacket(SioType.EVENT, namespace, [name, *args], ack_id), version=version)


def disconnect(namespace: str = "/", *, version: int = 5) -> str:
    return encode(SioPacket(SioType.DISCONNECT, namespace), version=version)


def redacted_connect(namespace: str = "/", auth: dict[str, Any] | None = None, *, version: int = 5) -> str:
    """The CONNECT packet as a transcript shows it: every auth value replaced by ``***``."""
    masked = {k: "***" for k in auth} if auth else None
    return connect(namespace, masked, version=version)
