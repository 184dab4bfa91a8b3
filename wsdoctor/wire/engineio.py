"""Engine.IO packets and polling payloads, protocol v4 (current) and v3 (Socket.IO 2.x servers).

Probes speak Engine.IO by hand so that they can show the exact bytes exchanged, so this codec is
strict about structure but never trusts its input: decoding *any* bytes either returns packets or
raises :class:`ProtocolError` (a ``ValueError``), nothing else. That is what lets a probe talking to a
hostile or broken server turn garbage into a one-sentence finding instead of a traceback.

Wire formats (engine.io-protocol, engine.io-parser v2 for v3 and v5 for v4):

- packet: one digit type (0 open, 1 close, 2 ping, 3 pong, 4 message, 5 upgrade, 6 noop) then data;
  a binary message inside a text payload is ``b`` + base64 in v4, ``b4`` + base64 in v3;
- v4 polling payload: packets joined by the record separator ``\\x1e``;
- v3 polling payload: ``<length>:<packet>`` repeated, where length counts UTF-16 code units (it is a
  JavaScript ``string.length``); python-engineio 3 counted code points, so both are accepted when they
  differ (only for characters outside the BMP). v3 XHR2 binary payloads
  (``\\x00|\\x01`` + length digits as bytes + ``\\xff`` + packet) are decoded too.
- open packet data: JSON ``{"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}`` in any key order.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

SEPARATOR = "\x1e"
VERSIONS = (3, 4)

#: Node engine.io's error codes (its HTTP answers are ``{"code":N,"message":…}``; an upgrade refused gets the
#: message alone as a text body). Code 4's message is the server's own (``allowRequest``'s), "Forbidden" by
#: default. Socket.IO 4 (engine.io 6) and Socket.IO 2 (engine.io 3) use the same table.
NODE_ERRORS: dict[int, str] = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}
#: python-engineio's answer to an EIO value it does not speak (a JSON string, 400).
PY_UNSUPPORTED = "The client is using an unsupported version of the Socket.IO or Engine.IO protocols"


class ProtocolError(ValueError):
    """The bytes are not valid Engine.IO / Socket.IO: the only error this codec raises."""


class PacketType(IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


@dataclass(frozen=True)
class Packet:
    """One Engine.IO packet. ``data`` is text, or bytes for a binary MESSAGE."""

    type: PacketType
    data: str | bytes = ""

    def __post_init__(self) -> None:
        if isinstance(self.data, bytes | bytearray) and self.type != PacketType.MESSAGE:
            raise ProtocolError("only MESSAGE packets can carry binary data")

    @property
    def binary(self) -> bool:
        return isinstance(self.data, bytes | bytearray)

    @property
    def text(self) -> str:
        """The data as text (binary data shown as a size, for transcripts)."""
        if isinstance(self.data, bytes | bytearray):
            return f"<binary {len(self.data)} bytes>"
        return self.data


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise ProtocolError(f"unsupported Engine.IO version {version!r} (3 and 4 are known)")


# --- single packets ----------------------------------------------------------


def encode_packet(packet: Packet, *, version: int = 4, b64: bool = False) -> str | bytes:
    """Encode one packet: text for a WebSocket text frame or a payload, bytes for a binary frame.

    With ``b64`` a binary message is encoded as text (``b…``), as polling payloads carry it.
    """
    _check_version(version)
    if packet.binary:
        raw = bytes(packet.data)  # type: ignore[arg-type]
        if b64:
            prefix = "b" if version == 4 else "b4"
            return prefix + base64.b64encode(raw).decode("ascii")
        return raw if version == 4 else bytes([PacketType.MESSAGE]) + raw
    return f"{int(packet.type)}{packet.data}"


def decode_packet(data: str | bytes | bytearray, *, version: int = 4) -> Packet:
    """Decode one packet: a ``str`` is a text packet (a text frame or one payload item), ``bytes`` a binary frame."""
    _check_version(version)
    if isinstance(data, bytes | bytearray):
        if version == 4:
            return Packet(PacketType.MESSAGE, bytes(data))
        # v3 binary frame: first byte is the packet type (always MESSAGE in practice)
        if not data:
            raise ProtocolError("empty binary packet")
        if data[0] != PacketType.MESSAGE:
            raise ProtocolError(f"binary packet of type {data[0]} (only MESSAGE may be binary)")
        return Packet(PacketType.MESSAGE, bytes(data[1:]))
    if not isinstance(data, str):
        raise ProtocolError(f"cannot decode a {type(data).__name__} as an Engine.IO packet")
    if not data:
        raise ProtocolError("empty packet")
    head = data[0]
    if head == "b":
        body = data[1:]
        if version == 3:
            if not body or body[0] != "4":
                raise ProtocolError("v3 base64 packet must be a MESSAGE ('b4…')")
            body = body[1:]
        try:
            return Packet(PacketType.MESSAGE, base64.b64decode(body.encode("ascii"), validate=True))
        except (binascii.Error, UnicodeEncodeError) as e:
            raise ProtocolError(f"invalid base64 in binary packet: {e}") from None
    if head not in "0123456":
        raise ProtocolError(f"unknown packet type {head!r}")
    return Packet(PacketType(int(head)), data[1:])


# --- payloads (polling bodies) ----------------------------------------------


def payload_version(data: str | bytes | bytearray) -> int:
    """The Engine.IO version a polling body is written in: 3 for ``<length>:<packet>…`` (or the v3 binary
    format), else 4. Socket.IO 2 servers answer every handshake, ``?EIO=4`` included, in the v3 format."""
    if isinstance(data, bytes | bytearray):
        if data[:1] in (b"\x00", b"\x01"):
            return 3
        head = bytes(data[:12]).decode("latin-1")
    else:
        head = data[:12]
    digits = len(head) - len(head.lstrip("0123456789"))
    return 3 if 0 < digits <= 10 and head[digits : digits + 1] == ":" else 4


def version_refusal(status: int | None, body: bytes | str) -> bool:
    """The answer refuses the EIO version asked for: Node's code 5 (JSON for HTTP, the bare message for an
    upgrade) or python-engineio's sentence."""
    if status != 400:
        return False
    text = body.decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else body
    return NODE_ERRORS[5] in text[:300] or PY_UNSUPPORTED in text[:300]


def encode_payload(packets: list[Packet] | tuple[Packet, ...], *, version: int = 4) -> str:
    """A polling body: v4 joins packets with ``\\x1e``, v3 prefixes each with its length."""
    _check_version(version)
    items = [encode_packet(p, version=version, b64=True) for p in packets]
    texts = [i if isinstance(i, str) else i.decode("latin-1") for i in items]  # b64=True: always str
    if version == 4:
        for t in texts:
            if SEPARATOR in t:
                raise ProtocolError("a v4 packet cannot contain the record separator \\x1e")
        return SEPARATOR.join(texts)
    return "".join(f"{_utf16_len(t)}:{t}" for t in texts)


def decode_payload(data: str | bytes | bytearray, *, version: int = 4) -> list[Packet]:
    """Decode a polling body (``bytes`` are UTF-8, or the v3 XHR2 binary format)."""
    _check_version(version)
    if isinstance(data, bytes | bytearray):
        if version == 3 and data[:1] in (b"\x00", b"\x01"):
            return _decode_v3_binary_payload(bytes(data))
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"payload is not UTF-8 text ({e.reason} at byte {e.start})") from None
    elif isinstance(data, str):
        text = data
    else:
        raise ProtocolError(f"cannot decode a {type(data).__name__} as an Engine.IO payload")
    if text == "":
        return []
    if version == 4:
        return [decode_packet(item, version=4) for item in text.split(SEPARATOR)]
    return _decode_v3_text_payload(text)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _decode_v3_text_payload(text: str) -> list[Packet]:
    try:
        return _split_v3(text, utf16=True)
    except ProtocolError as first:
        if _utf16_len(text) == len(text):
            raise
        try:  # python-engineio 3 counted code points, not UTF-16 units
            return _split_v3(text, utf16=False)
        except ProtocolError:
            raise first from None


def _split_v3(text: str, *, utf16: bool) -> list[Packet]:
    units: str | bytes
    if utf16:
        units = text.encode("utf-16-le", "surrogatepass")
        width = 2

        def unit(i: int) -> str:
            return units[i * width : i * width + width].decode("utf-16-le", "surrogatepass")  # type: ignore[index,union-attr]

        total = len(units) // width
    else:
        units = text
        total = len(text)

        def unit(i: int) -> str:
            return text[i]

    packets: list[Packet] = []
    i = 0
    while i < total:
        digits = ""
        while i < total and (c := unit(i)) != ":":
            if not c.isdigit() or not c.isascii():
                raise ProtocolError(f"v3 payload: expected a length before ':', got {c!r}")
            digits += c
            if len(digits) > 10:
                raise ProtocolError("v3 payload: length field too long")
            i += 1
        if i >= total or not digits:
            raise ProtocolError("v3 payload: missing '<length>:' header")
        n = int(digits)
        i += 1  # the ':'
        if i + n > total:
            raise ProtocolError(f"v3 payload: packet of length {n} runs past the end of the payload")
        if utf16:
            # like JavaScript's substr: a length may split a surrogate pair (the halves survive as is)
            chunk = units[i * 2 : (i + n) * 2].decode("utf-16-le", "surrogatepass")  # type: ignore[union-attr]
        else:
            chunk = text[i : i + n]
        if chunk:
            packets.append(decode_packet(chunk, version=3))
        i += n
    return packets


def _decode_v3_binary_payload(data: bytes) -> list[Packet]:
    packets: list[Packet] = []
    i = 0
    while i < len(data):
        kind = data[i]
        if kind not in (0, 1):
            raise ProtocolError(f"v3 binary payload: bad packet marker {kind}")
        i += 1
        digits = b""
        while i < len(data) and data[i] != 0xFF:
            if data[i] > 9 or len(digits) > 10:
                raise ProtocolError("v3 binary payload: bad length digits")
            digits += bytes([data[i] + 0x30])
            i += 1
        if i >= len(data) or not digits:
            raise ProtocolError("v3 binary payload: missing length")
        n = int(digits)
        i += 1
        chunk = data[i : i + n]
        if len(chunk) != n:
            raise ProtocolError(f"v3 binary payload: packet of length {n} runs past the end")
        if kind == 0:
            try:
                packets.append(decode_packet(chunk.decode("utf-8"), version=3))
            except UnicodeDecodeError:
                raise ProtocolError("v3 binary payload: text packet is not UTF-8") from None
        else:
            packets.append(decode_packet(chunk, version=3))
        i += n
    return packets


# --- the open packet -------------------------------------------------------------


@dataclass(frozen=True)
class OpenPacket:
    """The handshake data an Engine.IO server sends first (`0{…}`)."""

    sid: str
    upgrades: tuple[str, ...] = ()
    ping_interval: int | None = None  # ms
    ping_timeout: int | None = None  # ms
    max_payload: int | None = None
    keys: tuple[str, ...] = ()  # the JSON keys in the order the server wrote them (tells servers apart)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def loads_json(text: str) -> Any:
    """``json.loads`` that raises only :class:`ProtocolError` (deep nesting, bad text, huge numbers)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ProtocolError(f"invalid JSON: {str(e)[:120]}") from None


def parse_open(data: str | Packet) -> OpenPacket:
    """Parse the open packet (``0{…}`` or its data) into its fields, whatever the key order."""
    if isinstance(data, Packet):
        if data.type != PacketType.OPEN:
            raise ProtocolError(f"expected an open packet (0), got type {int(data.type)}")
        body = data.text
    elif isinstance(data, str):
        body = data[1:] if data.startswith("0") else data
    else:
        raise ProtocolError("open packet must be text")
    obj = loads_json(body)
    if not isinstance(obj, dict):
        raise ProtocolError("open packet data is not a JSON object")
    sid = obj.get("sid")
    if not isinstance(sid, str) or not sid:
        raise ProtocolError("open packet has no session id (sid)")
    upgrades = obj.get("upgrades", [])
    if not isinstance(upgrades, list) or not all(isinstance(u, str) for u in upgrades):
        raise ProtocolError("open packet 'upgrades' is not a list of strings")

    def number(key: str) -> int | None:
        v = obj.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ProtocolError(f"open packet {key!r} is not a number")
        return int(v)

    return OpenPacket(
        sid=sid,
        upgrades=tuple(upgrades),
        ping_interval=number("pingInterval"),
        ping_timeout=number("pingTimeout"),
        max_payload=number("maxPayload"),
        keys=tuple(obj),
        raw=obj,
    )


def encode_open(op: OpenPacket) -> str:
    """The open packet as a server writes it (Node's key order): for tests and fake servers."""
    obj: dict[str, Any] = {"sid": op.sid, "upgrades": list(op.upgrades)}
    if op.ping_interval is not None:
        obj["pingInterval"] = op.ping_interval
    if op.ping_timeout is not None:
        obj["pingTimeout"] = op.ping_timeout
    if op.max_payload is not None:
        obj["maxPayload"] = op.max_payload
    return "0" + json.dumps(obj, separators=(",", ":"))


def python_key_order(op: OpenPacket) -> bool | None:
    """python-engineio writes pingTimeout before pingInterval, Node the other way round (None: cannot tell)."""
    keys = list(op.keys)
    if "pingInterval" in keys and "pingTimeout" in keys:
        return keys.index("pingTimeout") < keys.index("pingInterval")
    return None
