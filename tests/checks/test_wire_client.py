"""socket.io-client URL semantics (wire/client.py) and the unverified JWT reader (wire/jwt.py)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsdoctor.wire.client import client_code, client_request
from wsdoctor.wire.jwt import JwtError, decode, try_decode


@pytest.mark.parametrize(
    ("url", "path", "transports", "request_uri", "namespace", "host", "port", "scheme"),
    [
        # the runbook's trap: the URL path is the namespace, the request goes to /socket.io/
        (
            "wss://api.x-or.cloud/dev/aiwm/chat",
            None,
            ("websocket",),
            "/socket.io/?EIO=4&transport=websocket",
            "/dev/aiwm/chat",
            "api.x-or.cloud",
            443,
            "https",
        ),
        # the fix: the prefix in `path` (trailing slash added like engine.io-client)
        (
            "wss://api.x-or.cloud",
            "/dev/aiwm/chat/socket.io",
            ("polling", "websocket"),
            "/dev/aiwm/chat/socket.io/?EIO=4&transport=polling",
            "/",
            "api.x-or.cloud",
            443,
            "https",
        ),
        (
            "ws://localhost:3350/chat",
            None,
            ("polling",),
            "/socket.io/?EIO=4&transport=polling",
            "/chat",
            "localhost",
            3350,
            "http",
        ),
        (
            "http://10.0.0.1",
            "/ws/",
            ("polling",),
            "/ws/?EIO=4&transport=polling",
            "/",
            "10.0.0.1",
            80,
            "http",
        ),
        (
            "https://h.example:8443/",
            "ws",
            ("websocket",),
            "/ws/?EIO=4&transport=websocket",
            "/",
            "h.example",
            8443,
            "https",
        ),
        # no scheme: socket.io-client (outside a browser) assumes https
        (
            "api.example.com/admin",
            None,
            ("polling",),
            "/socket.io/?EIO=4&transport=polling",
            "/admin",
            "api.example.com",
            443,
            "https",
        ),
        (
            "ws://[::1]:9000/x",
            None,
            ("polling",),
            "/socket.io/?EIO=4&transport=polling",
            "/x",
            "::1",
            9000,
            "http",
        ),
    ],
)
def test_io_url_semantics(url, path, transports, request_uri, namespace, host, port, scheme) -> None:
    c = client_request(url, path, transports)
    assert c.request_uri() == request_uri
    assert c.namespace == namespace
    assert (c.host, c.port, c.scheme) == (host, port, scheme)
    assert not c.raw
    assert c.url_for().endswith(request_uri)
    assert c.url_for().startswith(f"{scheme}://")


def test_query_of_the_url_goes_first_and_url_for_brackets_ipv6() -> None:
    c = client_request("ws://[::1]:9000/ns?room=a", None, ("polling", "websocket"))
    assert c.request_uri() == "/socket.io/?room=a&EIO=4&transport=polling"
    assert c.request_uri("websocket") == "/socket.io/?room=a&EIO=4&transport=websocket"
    assert c.url_for() == "http://[::1]:9000/socket.io/?room=a&EIO=4&transport=polling"
    assert c.ws_url_for() == "ws://[::1]:9000/socket.io/?room=a&EIO=4&transport=websocket"
    assert c.request_path == "/socket.io/" and c.query == "room=a&EIO=4&transport=polling"


def test_raw_engineio_urls_are_the_request_itself() -> None:
    c = client_request("wss://api.x-or.cloud/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket")
    assert c.raw and c.namespace == "/"
    assert c.request_uri() == "/dev/aiwm/chat/socket.io/?EIO=4&transport=websocket"
    assert c.transports == ("websocket",)
    assert c.request_uri("polling") == "/dev/aiwm/chat/socket.io/?EIO=4&transport=polling"
    raw = client_request("ws://localhost:3350/chat", transports="websocket", raw=True)
    assert raw.raw and raw.request_uri() == "/chat" and raw.request_uri("websocket") == "/chat"


@pytest.mark.parametrize("bad", ["", "ftp://example.com", "wss://", "ws://h:99999/x", "ws://[zz::1]/"])
def test_bad_urls_raise_one_sentence(bad: str) -> None:
    with pytest.raises(ValueError) as e:
        client_request(bad)
    msg = str(e.value)
    assert msg and "\n" not in msg and "Traceback" not in msg


def test_unknown_transport() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        client_request("wss://h", transports=("carrier-pigeon",))


def test_client_code_round_trip() -> None:
    code = client_code("wss://api.x-or.cloud", "/dev/aiwm/chat/socket.io/", "/", ("websocket",), auth=True)
    assert code == (
        "const socket = io('wss://api.x-or.cloud', {\n"
        "  path: '/dev/aiwm/chat/socket.io',\n"
        "  auth: { token },\n"
        "  transports: ['websocket'],\n"
        "});"
    )
    assert client_code("wss://h", None, "/chat", auth=False) == "const socket = io('wss://h/chat');"


@settings(max_examples=60, deadline=None)
@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    ns=st.from_regex(r"(/[a-z0-9_-]{1,8}){0,3}", fullmatch=True),
    path=st.one_of(st.none(), st.from_regex(r"(/[a-z0-9_.-]{1,8}){1,3}/?", fullmatch=True)),
    scheme=st.sampled_from(["ws", "wss", "http", "https"]),
)
def test_property_request_and_namespace(host, port, ns, path, scheme) -> None:
    url = f"{scheme}://{host}{':' + str(port) if port else ''}{ns}"
    c = client_request(url, path)
    if c.raw:  # a generated path that happens to end in /socket.io/ is a raw request
        return
    assert c.namespace == (ns or "/")
    assert c.path.startswith("/") and c.path.endswith("/") and "//" not in c.path
    assert c.request_uri().startswith(c.path + "?")
    assert c.request_uri().endswith("EIO=4&transport=polling")
    assert c.port == (port or (443 if scheme in ("wss", "https") else 80))
    # what the client sends never depends on the namespace
    assert (
        client_request(f"{scheme}://{host}{':' + str(port) if port else ''}", path).request_uri()
        == c.request_uri()
    )


# --- jwt ------------------------------------------------------------------------------------------------


def _jwt(header: dict, claims: dict) -> str:
    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64(header)}.{b64(claims)}.sig"


def test_jwt_times_and_expiry() -> None:
    token = _jwt(
        {"alg": "HS256"}, {"exp": 1_700_000_000, "iat": 1_699_996_400, "nbf": 1_699_996_400, "sub": "x"}
    )
    info = decode(token)
    assert info.alg == "HS256"
    assert info.exp == datetime.fromtimestamp(1_700_000_000, UTC)
    assert info.expired(datetime(2024, 1, 1, tzinfo=UTC))
    assert not info.expired(datetime(2023, 11, 14, 0, 0, tzinfo=UTC))
    assert info.not_yet_valid(datetime(2023, 1, 1, tzinfo=UTC))
    assert "exp 2023-11-14 22:13:20 UTC" in info.describe_times()
    assert token not in repr(info)
    assert decode("Bearer " + token).exp == info.exp


def test_pyjwt_tokens_decode() -> None:
    jwt = pytest.importorskip("jwt")
    token = jwt.encode(
        {"exp": 2_000_000_000, "sub": "u"}, "a-test-secret-that-is-32-bytes-long!", algorithm="HS256"
    )
    assert decode(token).exp == datetime.fromtimestamp(2_000_000_000, UTC)


@pytest.mark.parametrize("bad", ["", "abc", "a.b", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.x", "a.b.c.d"])
def test_not_a_jwt(bad: str) -> None:
    assert try_decode(bad) is None
    if bad:
        with pytest.raises(JwtError) as e:
            decode(bad)
        assert bad not in str(e.value) or len(bad) < 4


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_jwt_decode_never_raises_anything_else(text: str) -> None:
    try:
        decode(text)
    except JwtError:
        pass


def test_client_version_sets_the_eio_it_asks_for() -> None:
    v2 = client_request("wss://api.example.com", "/chat/socket.io", client_version=2)
    assert v2.eio == 3 and v2.request_uri() == "/chat/socket.io/?EIO=3&transport=polling"
    for version in (3, 4):
        assert (
            client_request("wss://api.example.com", client_version=version).query == "EIO=4&transport=polling"
        )


def test_client_code_for_2x_puts_the_token_in_the_query() -> None:
    from wsdoctor.wire.client import client_code

    assert "query: { token }" in client_code("wss://h", "/x/socket.io", client_version=2)
    assert "auth: { token }" in client_code("wss://h", "/x/socket.io")
