"""The recorded client address: X-Forwarded-For only through trusted proxies, never a crash."""

import pytest

from circles.client_address import client_address, parse_address, trusted_networks

PROXIES = trusted_networks(("10.0.0.0/8", "127.0.0.1", "::1"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: its header is ignored
        ("127.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1", "1.2.3.4"),  # right-most untrusted
        ("127.0.0.1", "10.2.2.2, 10.1.1.1", "10.2.2.2"),  # all trusted: the left-most
        ("127.0.0.1", "1.2.3.4:5678", "1.2.3.4"),
        ("::1", "[2001:db8::1]:443", "2001:db8::1"),
        ("127.0.0.1", "2001:db8::2", "2001:db8::2"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("127.0.0.1", "unknown", None),
        ("127.0.0.1", "1.2.3.4, garbage", None),
        ("127.0.0.1", ",,,", None),
        ("127.0.0.1", "x" * 10_000, None),
        ("127.0.0.1", "garbage, 1.2.3.4", "1.2.3.4"),  # garbage left of the client is never read
        ("::ffff:127.0.0.1", "1.2.3.4", "1.2.3.4"),
        (None, "1.2.3.4", None),
        ("not-an-ip", None, None),
    ],
)
def test_client_address(peer, forwarded, expected) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_address("127.0.0.1", "1.2.3.4", ()) == "127.0.0.1"


def test_parse_address_forms() -> None:
    assert str(parse_address(' "1.2.3.4" ')) == "1.2.3.4"
    assert parse_address("[::1") is not None and parse_address("") is None
