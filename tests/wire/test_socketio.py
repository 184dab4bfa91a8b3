"""Socket.IO codec: v5 and v4 samples as servers really send them, round trips, arbitrary input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsdoctor.wire import socketio as sio
from wsdoctor.wire.engineio import ProtocolError
from wsdoctor.wire.socketio import SioPacket, SioType

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", SioPacket(SioType.CONNECT)),
        ('0/admin,{"token":"t"}', SioPacket(SioType.CONNECT, "/admin", {"token": "t"})),
        ('0{"sid":"abc"}', SioPacket(SioType.CONNECT, "/", {"sid": "abc"})),
        (
            '4{"message":"authentication failed","data":{"code":7}}',
            SioPacket(SioType.CONNECT_ERROR, "/", {"message": "authentication failed", "data": {"code": 7}}),
        ),
        ('4/ns,"Unable to connect"', SioPacket(SioType.CONNECT_ERROR, "/ns", "Unable to connect")),
        (
            '4/ns,{"message":"Invalid namespace"}',
            SioPacket(SioType.CONNECT_ERROR, "/ns", {"message": "Invalid namespace"}),
        ),
        ('2["instance",{"id":"b1"}]', SioPacket(SioType.EVENT, "/", ["instance", {"id": "b1"}])),
        ('21["whoami"]', SioPacket(SioType.EVENT, "/", ["whoami"], 1)),
        ('31["b2"]', SioPacket(SioType.ACK, "/", ["b2"], 1)),
        ('3/chat,12["x"]', SioPacket(SioType.ACK, "/chat", ["x"], 12)),
        ("1/admin,", SioPacket(SioType.DISCONNECT, "/admin")),
        (
            '51-["ev",{"_placeholder":true,"num":0}]',
            SioPacket(SioType.BINARY_EVENT, "/", ["ev", {"_placeholder": True, "num": 0}], attachments=1),
        ),
    ],
)
def test_v5_samples(text: str, expected: SioPacket) -> None:
    assert sio.decode(text) == expected
    assert sio.encode(expected) == text


def test_error_message_and_data() -> None:
    p = sio.decode('4{"message":"authentication failed","data":{"reason":"expired"}}')
    assert p.error_message == "authentication failed" and p.error_data == {"reason": "expired"}
    assert sio.decode('4/ns,"Unable to connect"').error_message == "Unable to connect"
    assert sio.decode('2["instance",1]').event == "instance"


def test_v4_differences() -> None:
    # Socket.IO 2.x: CONNECT without payload, the namespace may carry a query, ERROR is a plain string
    assert sio.connect("/admin", {"token": "t"}, version=4) == "0/admin,"
    p = sio.decode("0/admin?token=abc,", version=4)
    assert (p.type, p.namespace, p.query) == (SioType.CONNECT, "/admin", "token=abc")
    assert sio.encode(p, version=4) == "0/admin?token=abc,"
    err = sio.decode('4"Not authorized"', version=4)
    assert err.type is sio.ERROR and err.error_message == "Not authorized"


@pytest.mark.parametrize(
    "bad",
    ["", "7", "0[1]", "2{}", '2["connect"]', "2[]", "1{}", "5[1]", "4null", "3{", "2" + "1" * 30 + "[]"],
)
def test_v5_rejects(bad: str) -> None:
    with pytest.raises(ProtocolError):
        sio.decode(bad)


def test_connect_helpers_mask_the_token() -> None:
    assert sio.connect("/dev/aiwm/chat", {"token": "SECRET"}) == '0/dev/aiwm/chat,{"token":"SECRET"}'
    assert "SECRET" not in sio.redacted_connect("/dev/aiwm/chat", {"token": "SECRET"})
    assert sio.connect() == "0"


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.text(max_size=10))
json_value = st.recursive(
    json_leaf,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=5), kids, max_size=3)
    ),
    max_leaves=8,
)
namespaces = st.one_of(st.just("/"), st.from_regex(r"/[a-z0-9/_-]{1,12}", fullmatch=True))
event_names = st.text(min_size=1, max_size=10).filter(lambda s: s not in sio.RESERVED_EVENTS)


@st.composite
def v5_packets(draw: st.DrawFn) -> SioPacket:
    ptype = draw(st.sampled_from(list(SioType)))
    ns = draw(namespaces)
    ack = draw(st.one_of(st.none(), st.integers(0, 10**9)))
    if ptype == SioType.CONNECT:
        data = draw(st.one_of(st.none(), st.dictionaries(st.text(max_size=5), json_value, max_size=3)))
        ack = None
    elif ptype == SioType.DISCONNECT:
        data, ack = None, None
    elif ptype == SioType.CONNECT_ERROR:
        data = draw(
            st.one_of(st.text(max_size=20), st.dictionaries(st.text(max_size=5), json_value, max_size=3))
        )
        ack = None
    elif ptype in (SioType.EVENT, SioType.BINARY_EVENT):
        data = [draw(event_names), *draw(st.lists(json_value, max_size=3))]
    else:
        data = draw(st.lists(json_value, max_size=3))
    att = draw(st.integers(0, 5)) if ptype in (SioType.BINARY_EVENT, SioType.BINARY_ACK) else 0
    return SioPacket(ptype, ns, data, ack, att)


@SETTINGS
@given(v5_packets())
def test_round_trip(packet: SioPacket) -> None:
    assert sio.decode(sio.encode(packet)) == packet


@SETTINGS
@given(st.text(max_size=200), st.sampled_from([4, 5]))
def test_arbitrary_text_raises_only_protocol_error(text: str, version: int) -> None:
    try:
        sio.decode(text, version=version)
    except ProtocolError:
        pass


@SETTINGS
@given(st.from_regex(r"[0-6][0-9]{0,3}-?(/[a-z,]{0,5})?[0-9]{0,4}[\[\]{}\"a-z0-9,:]{0,20}", fullmatch=True))
def test_structured_garbage_raises_only_protocol_error(text: str) -> None:
    try:
        sio.decode(text)
    except ProtocolError:
        pass
