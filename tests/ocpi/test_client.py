"""Outbound calls against partners that misbehave (issue 18, findings 1 and 7): a total
deadline per call, and no calls to addresses inside our network unless allowed."""

import pytest

from ocpi import client
from partners import outbound
from tests.ocpi.partner import Partner


def test_call_to_a_trickling_partner_ends_at_the_deadline(settings):
    settings.OUTBOUND_HTTP_DEADLINE_SECONDS = 1
    # One byte every 0.3 s: each read is well inside httpx's 10 s read timeout.
    with (
        Partner(trickle_seconds=0.3) as partner,
        pytest.raises(client.ClientError, match="no complete answer within 1"),
    ):
        client.call("PUT", f"{partner.url}/push", token="t", json={"a": 1})
    assert [(m, p) for m, p, _ in partner.received] == [("PUT", "/push")]


def test_call_to_a_healthy_partner_answers(settings):
    with Partner() as partner:
        reply = client.call("GET", f"{partner.url}/versions", token="t")
    assert reply.status_code == 1000


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/versions",
        "http://localhost:{port}/versions",
        "http://[::1]:{port}/versions",
        "http://[::ffff:127.0.0.1]:{port}/versions",
        "http://0.0.0.0:{port}/versions",
    ],
)
def test_call_refuses_loopback_addresses_unless_allowed(settings, url):
    # Only addresses of this machine here: a test never sends anything to another network.
    settings.OUTBOUND_ALLOW_PRIVATE_URLS = False
    with Partner() as partner, pytest.raises(client.RefusedURL):
        client.call("GET", url.format(port=partner.server.server_port), token="t")
    assert partner.received == []


def test_call_refuses_other_schemes(settings):
    with pytest.raises(client.RefusedURL):
        client.call("GET", "file:///etc/passwd", token="t")


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False), ("::1", False), ("0.0.0.0", False), ("10.1.2.3", False),
        ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False),
        ("100.64.0.1", False), ("fc00::1", False), ("fe80::1%eth0", False),
        ("::ffff:10.0.0.1", False), ("224.0.0.1", False), ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
    ],
)  # fmt: skip
def test_public_address_tells_addresses_inside_a_network(address, public):
    assert outbound.public_address(address) is public
