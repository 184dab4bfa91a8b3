"""The TLS probe and https polling against TLS servers with good, wrong-name and expired certificates."""

from __future__ import annotations

import pytest

from tests.probes import hostile
from tests.probes.certs import Certs
from wsdoctor.probes import ProbeContext, handshake, tls

pytestmark = pytest.mark.timeout(30)


def ctx(**kw: object) -> ProbeContext:
    return ProbeContext(timeout=1.0, **kw)  # type: ignore[arg-type]


async def test_good_certificate(certs: Certs) -> None:
    async with hostile.serve(hostile.NODE_OPEN, certs.server_context("127.0.0.1", "localhost")) as port:
        t = await tls("127.0.0.1", port, ctx=ctx(ca_file=certs.ca_file))
        hs = await handshake(f"https://127.0.0.1:{port}", "/socket.io/", ctx=ctx(ca_file=certs.ca_file))
    assert t.ok and t.verified and t.hostname_ok and t.error is None
    assert t.days_left is not None and t.days_left > 300
    assert t.alpn == "http/1.1" and t.version in ("TLSv1.2", "TLSv1.3")
    assert "127.0.0.1" in t.san and t.not_after
    assert hs.ok  # polling over https with the same CA


async def test_unknown_ca_is_a_chain_problem(certs: Certs) -> None:
    async with hostile.serve(hostile.NODE_OPEN, certs.server_context("127.0.0.1")) as port:
        t = await tls("127.0.0.1", port, ctx=ctx())  # system store: does not know the test CA
        hs = await handshake(f"https://127.0.0.1:{port}", "/socket.io/", ctx=ctx())
        loose = await handshake(f"https://127.0.0.1:{port}", "/socket.io/", ctx=ctx(insecure=True))
    assert not t.ok and not t.verified and t.stage == "tls"
    assert "chain was rejected" in (t.error or "") and t.hostname_ok is True
    assert not hs.ok and hs.exchange.stage == "tls" and "certificate" in (hs.error or "")
    assert loose.ok


async def test_wrong_hostname(certs: Certs) -> None:
    async with hostile.serve(hostile.NODE_OPEN, certs.server_context("other.example")) as port:
        t = await tls("127.0.0.1", port, ctx=ctx(ca_file=certs.ca_file))
        hs = await handshake(f"https://127.0.0.1:{port}", "/socket.io/", ctx=ctx(ca_file=certs.ca_file))
        sni = await handshake(
            f"https://127.0.0.1:{port}",
            "/socket.io/",
            ctx=ctx(ca_file=certs.ca_file, server_hostname="other.example"),
        )
        insecure = await tls("127.0.0.1", port, ctx=ctx(insecure=True))
    assert not t.ok and t.verified and t.hostname_ok is False and t.stage == "tls"
    assert t.error == "the certificate is not valid for 127.0.0.1 (it names other.example)"
    assert not hs.ok and hs.exchange.stage == "tls" and "127.0.0.1" in (hs.error or "")
    assert sni.ok  # the SNI / verified name override reaches the right certificate
    assert insecure.ok and insecure.insecure and not insecure.verified and insecure.hostname_ok is False


async def test_expired_certificate(certs: Certs) -> None:
    async with hostile.serve(hostile.NODE_OPEN, certs.expired_context()) as port:
        t = await tls("127.0.0.1", port, ctx=ctx(ca_file=certs.expired_ca_file))
        hs = await handshake(
            f"https://127.0.0.1:{port}", "/socket.io/", ctx=ctx(ca_file=certs.expired_ca_file)
        )
    assert not t.ok and t.stage == "tls"
    assert t.days_left is not None and t.days_left < 0
    assert "certificate has expired" in (t.error or "")
    assert not hs.ok and hs.exchange.stage == "tls"
    assert hs.error == f"the TLS certificate of 127.0.0.1:{port} was rejected: certificate has expired"


async def test_tls_against_plain_http_and_silence(certs: Certs) -> None:
    async with hostile.serve(hostile.http_on_anything) as port:
        t = await tls("127.0.0.1", port, ctx=ctx(ca_file=certs.ca_file))
    assert not t.ok and t.stage == "tls" and (t.error or "").startswith("the TLS handshake with 127.0.0.1:")
    async with hostile.serve(hostile.silent) as port:
        t = await tls("127.0.0.1", port, ctx=ctx(ca_file=certs.ca_file))
    assert not t.ok and t.stage == "tls"
    assert t.error == "timed out after 1.0 s in the TLS handshake with 127.0.0.1"


async def test_bad_ca_file_is_one_sentence(tmp_path) -> None:  # noqa: ANN001
    t = await tls("127.0.0.1", 1, ctx=ctx(ca_file=str(tmp_path / "missing.pem")))
    assert (
        not t.ok and t.error == f"CA file {tmp_path / 'missing.pem'} does not exist; check the --ca-file path"
    )
