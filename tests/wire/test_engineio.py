"""Engine.IO codec: known wire samples, round trips, and hostile input that may only raise ProtocolError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsdoctor.wire.engineio import (
    OpenPacket,
    Packet,
    PacketType,
    ProtocolError,
    decode_packet,
    decode_payload,
    encode_open,
    encode_packet,
    encode_payload,
    parse_open,
    python_key_order,
)

PY_OPEN = (
    '0{"sid":"abc","upgrades":["websocket"],"pingTimeout":20000,"pingInterval":25000,"maxPayload":1000000}'
)
NODE_OPEN = (
    '0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_v4_payload_with_open_message_and_binary() -> None:
    packets = decode_payload((PY_OPEN + '\x1e40{"sid":"x"}\x1ebAQI=').encode())
    assert [p.type for p in packets] == [PacketType.OPEN, PacketType.MESSAGE, PacketType.MESSAGE]
    assert packets[1].data == '0{"sid":"x"}'
    assert packets[2].data == b"\x01\x02" and packets[2].binary


def test_open_packet_any_key_order() -> None:
    for text in (PY_OPEN, NODE_OPEN):
        op = parse_open(decode_packet(text))
        assert (op.sid, op.upgrades, op.ping_interval, op.ping_timeout, op.max_payload) == (
            "abc",
            ("websocket",),
            25000,
            20000,
            1000000,
        )
    assert python_key_order(parse_open(PY_OPEN)) is True
    assert python_key_order(parse_open(NODE_OPEN)) is False
    assert python_key_order(parse_open('0{"sid":"a"}')) is None


@pytest.mark.parametrize(
    "bad",
    [
        "0",
        "0[]",
        '0{"upgrades":[]}',
        '0{"sid":"a","upgrades":"websocket"}',
        '0{"sid":"a","pingInterval":"x"}',
        "4hi",
    ],
)
def test_open_packet_rejects(bad: str) -> None:
    with pytest.raises(ProtocolError):
        parse_open(decode_packet(bad))


def test_v3_payload_lengths_count_utf16_units() -> None:
    # "😀" is one code point but two UTF-16 units: JavaScript's string.length says 2
    text = encode_payload(
        [Packet(PacketType.MESSAGE, '2["😀"]'), Packet(PacketType.PING, "probe")], version=3
    )
    assert text == '8:42["😀"]6:2probe'
    assert decode_payload(text, version=3) == [
        Packet(PacketType.MESSAGE, '2["😀"]'),
        Packet(PacketType.PING, "probe"),
    ]
    # python-engineio 3 counted code points: accepted too
    assert decode_payload('7:42["😀"]', version=3) == [Packet(PacketType.MESSAGE, '2["😀"]')]


def test_v3_binary_base64_and_xhr2_payload() -> None:
    assert decode_payload("6:b4AQI=", version=3) == [Packet(PacketType.MESSAGE, b"\x01\x02")]
    xhr2 = b"\x00\x02\xff40" + b"\x01\x03\xff\x04\x01\x02"
    assert decode_payload(xhr2, version=3) == [
        Packet(PacketType.MESSAGE, "0"),
        Packet(PacketType.MESSAGE, b"\x01\x02"),
    ]
    assert decode_packet(b"\x04\xff", version=3) == Packet(PacketType.MESSAGE, b"\xff")


@pytest.mark.parametrize(
    ("data", "version"), [("7", 4), ("", 4), ("", 3), ("b!!!", 4), ("b5AQI=", 3), (b"", 3)]
)
def test_bad_packet_is_protocol_error(data: str | bytes, version: int) -> None:
    with pytest.raises(ProtocolError):
        decode_packet(data, version=version)


@pytest.mark.parametrize(
    ("data", "version"),
    [
        ("x:2", 3),
        ("5:2", 3),
        ("2probe", 3),
        ("3:2", 3),
        ("99999999999:2", 3),
        (b"\xff\xfe", 4),
        (b"\x00\x05\xff40", 3),
    ],
)
def test_bad_payload_is_protocol_error(data: str | bytes, version: int) -> None:
    with pytest.raises(ProtocolError):
        decode_payload(data, version=version)


def test_encode_open_round_trip() -> None:
    op = OpenPacket("s1", ("websocket",), 25000, 20000, 1000000)
    back = parse_open(encode_open(op))
    assert (back.sid, back.upgrades, back.ping_interval, back.ping_timeout, back.max_payload) == (
        "s1",
        ("websocket",),
        25000,
        20000,
        1000000,
    )


text_data = st.text(st.characters(blacklist_characters="\x1e", blacklist_categories=("Cs",)), max_size=40)
packets = st.one_of(
    st.builds(Packet, st.sampled_from(list(PacketType)), text_data),
    st.builds(Packet, st.just(PacketType.MESSAGE), st.binary(max_size=40)),
)


@SETTINGS
@given(st.lists(packets, min_size=1, max_size=6), st.sampled_from([3, 4]))
def test_payload_round_trip(pkts: list[Packet], version: int) -> None:
    assert decode_payload(encode_payload(pkts, version=version), version=version) == pkts
    assert decode_payload(encode_payload(pkts, version=version).encode("utf-8"), version=version) == pkts


@SETTINGS
@given(packets, st.sampled_from([3, 4]))
def test_frame_round_trip(pkt: Packet, version: int) -> None:
    assert decode_packet(encode_packet(pkt, version=version), version=version) == pkt


@SETTINGS
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)), st.sampled_from([3, 4]))
def test_arbitrary_input_raises_only_protocol_error(data: bytes | str, version: int) -> None:
    for fn in (decode_payload, decode_packet):
        try:
            fn(data, version=version)
        except ProtocolError:
            pass
    try:
        parse_open(data if isinstance(data, str) else data.decode("latin-1"))
    except ProtocolError:
        pass


def test_deeply_nested_json_is_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_open("0" + "[" * 100000)


def test_payload_version_tells_engineio_3_from_4() -> None:
    from wsdoctor.wire.engineio import payload_version

    v3 = '97:0{"sid":"x","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}2:40'
    assert payload_version(v3) == 3 and payload_version(v3.encode()) == 3
    assert payload_version(b"\x00\x09\xff0{}") == 3  # the v3 XHR2 binary payload
    for v4 in (NODE_OPEN, "40", '42["a"]\x1e2', "6", ""):
        assert payload_version(v4) == 4, v4
    assert payload_version("12345678901:0{") == 4  # no length is that long: not a v3 header


def test_version_refusal_in_node_and_python_words() -> None:
    from wsdoctor.wire.engineio import PY_UNSUPPORTED, version_refusal

    assert version_refusal(400, b'{"code":5,"message":"Unsupported protocol version"}')
    assert version_refusal(400, b"Unsupported protocol version")  # an upgrade refused: the bare message
    assert version_refusal(400, f'"{PY_UNSUPPORTED}"'.encode())
    assert not version_refusal(400, b'{"code":1,"message":"Session ID unknown"}')
    assert not version_refusal(200, b"Unsupported protocol version")
