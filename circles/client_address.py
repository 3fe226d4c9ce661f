"""The client's address behind trusted proxies (pure logic).

`X-Forwarded-For` is honoured only when the direct peer is a trusted proxy; then the
address taken is the right-most one that is not itself a trusted proxy (everything left of
it was written by the client and proves nothing). Odd headers never raise: an entry that is
not an address ends the walk and gives None (unknown) rather than a guess.
"""

import ipaddress
from collections.abc import Iterable, Sequence
from functools import cache

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@cache
def trusted_networks(entries: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    """Parse `CIRCLES_TRUSTED_PROXIES` entries (IPs or CIDRs); a bad entry raises ValueError."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def parse_address(text: str) -> IpAddress | None:
    """An address from a forwarded entry (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`), or None."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def in_networks(address: IpAddress, networks: Iterable[IpNetwork]) -> bool:
    """Whether `address` is in one of `networks` (of its own IP version)."""
    return any(address.version == network.version and address in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[IpNetwork]) -> str | None:
    """The address to record for a request from `peer` carrying `forwarded_for` (may be None)."""
    peer_address = parse_address(peer or "")
    if peer_address is None:
        return None
    if not forwarded_for or not in_networks(peer_address, trusted):
        return str(peer_address)
    candidate = peer_address
    for entry in reversed(forwarded_for.split(",")):
        address = parse_address(entry)
        if address is None:
            return None
        candidate = address
        if not in_networks(address, trusted):
            return str(address)
    return str(candidate)  # every hop trusted: the left-most is as close to the client as we know
