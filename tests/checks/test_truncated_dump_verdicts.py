"""A cut `nginx -T` output is said to be cut: `syntax` warns with what is missing, the checks that need the
missing part say so, and nothing blames nginx for refusing a config it may well accept."""

from __future__ import annotations

from tests.nginx.conftest import SEED_DUMP
from wsdoctor.checks import run_all
from wsdoctor.facts import Facts
from wsdoctor.nginx.load import load_dump
from wsdoctor.report import Status
from wsdoctor.target import Target
from wsdoctor.wire.client import client_request


def test_a_truncated_dump_is_a_warning_about_the_input_not_a_refusal() -> None:
    text = SEED_DUMP.read_text()
    cut = text[: text.index("proxy_read_timeout")]  # inside the Socket.IO location's block
    target = Target(url="wss://api.x-or.cloud", path="/dev/aiwm/chat/socket.io", offline=True)
    facts = Facts(target=target, config=load_dump(cut, "dump.txt"))
    facts.client = client_request(target.url, target.path)
    found = run_all(facts)
    syntax = found["syntax"]
    assert syntax.status is Status.WARN, syntax
    assert syntax.title.startswith("The nginx -T output is truncated")
    assert "missing:" in syntax.summary and "refuse" not in syntax.summary
    assert found["timeout"].status is Status.SKIP and "truncated" in found["timeout"].summary
