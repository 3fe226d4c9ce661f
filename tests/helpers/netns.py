"""Several hosts on one machine: a network namespace per host on a private bridge, made and removed here.

`HostNetwork` creates a bridge in the root namespace with the address `.1` of a free /24 in
10.213.0.0/16 (the test's own side: clients and providers), and per host a namespace whose only
interface besides its own loopback is a veth on that bridge, with an address the test assigns.
No namespace gets a default route, so nothing can leave the bridge; a host's 127.0.0.1 is its own.
`cut(host)` takes a host's link down (as a pulled cable: its sockets stay open, nothing arrives),
`mend(host)` brings it back. `close()` removes every namespace and the bridge, and is safe to call
after a partial setup. Needs root and iproute2 (`ip`); without them `HostNetwork.create` raises
NamespacesUnavailable saying why (the tests fail with that, never skip).
"""

import contextlib
import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass, field

SUPERNET = ipaddress.ip_network("10.213.0.0/16")


class NamespacesUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no iproute2, or the kernel refuses)."""


@dataclass(frozen=True)
class Host:
    """One simulated machine: its namespace and its address on the bridge."""

    role: str
    namespace: str
    address: str

    @property
    def prefix(self) -> tuple[str, ...]:
        """`ip netns exec NAMESPACE`: put before a command to run it on this host."""
        return (ip_binary(), "netns", "exec", self.namespace)


def ip_binary() -> str:
    """iproute2's `ip` (Debian keeps it in /usr/sbin or /bin)."""
    path = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin:/bin")
    if path is None:
        raise NamespacesUnavailable("iproute2 is not installed (no `ip`): `make system-deps` installs it")
    return path


def _ip(*args: str) -> None:
    result = subprocess.run([ip_binary(), *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NamespacesUnavailable(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


def _used_networks() -> set[ipaddress.IPv4Network]:
    """The /24s of 10.213.0.0/16 some interface or route of this machine already uses."""
    out = subprocess.run([ip_binary(), "-4", "-o", "addr"], capture_output=True, text=True, timeout=10).stdout
    out += subprocess.run([ip_binary(), "-4", "route"], capture_output=True, text=True, timeout=10).stdout
    used = set()
    for word in out.split():
        with contextlib.suppress(ValueError):
            network = ipaddress.ip_network(word.split("/")[0] + "/24", strict=False)
            if network.subnet_of(SUPERNET):
                used.add(network)
    return used


@dataclass
class HostNetwork:
    """A bridge, a /24 and the hosts on it (see the module docstring)."""

    tag: str
    network: ipaddress.IPv4Network
    bridge: str
    hosts: dict[str, Host] = field(default_factory=dict)
    _links: list[str] = field(default_factory=list)

    @classmethod
    def create(cls) -> "HostNetwork":
        """A new bridge on a free /24 of 10.213.0.0/16, with the root namespace's side at `.1`."""
        if os.geteuid() != 0:
            raise NamespacesUnavailable("network namespaces need root (run the tests as root)")
        tag = f"{os.getpid() % 100000:05d}"
        used = _used_networks()
        start = os.getpid() % 250
        candidates = [ipaddress.ip_network(f"10.213.{(start + i) % 250 + 1}.0/24") for i in range(250)]
        network = next((net for net in candidates if net not in used), None)
        if network is None:
            raise NamespacesUnavailable("no free /24 left in 10.213.0.0/16")
        self = cls(tag, network, f"cbr{tag}")
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            # A fixed address: by default a bridge takes the lowest of its ports' addresses and
            # changes it when that port goes down (a host cut off), which leaves every host's ARP
            # entry for the root namespace's side stale and drops its traffic for half a minute.
            _ip("link", "set", self.bridge, "address", f"02:13:{int(tag) % 256:02x}:00:00:01")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except NamespacesUnavailable:
            self.close()
            raise
        return self

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (where the test's clients come from)."""
        return str(self.network.network_address + 1)

    def add(self, role: str, last_octet: int) -> Host:
        """A new host `role` at `.last_octet` of the network."""
        index = len(self.hosts)
        host = Host(role, f"circles-{self.tag}-{role}", str(self.network.network_address + last_octet))
        outside, inside = f"cv{self.tag}{index}", f"ci{self.tag}{index}"
        _ip("netns", "add", host.namespace)
        self.hosts[role] = host
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._links.append(outside)
        _ip("link", "set", inside, "netns", host.namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        _ip("-n", host.namespace, "link", "set", inside, "name", "eth0")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        return host

    def cut(self, host: Host) -> None:
        """Take `host`'s link down: it neither sends nor receives, and its peers are not told."""
        _ip("-n", host.namespace, "link", "set", "eth0", "down")

    def mend(self, host: Host) -> None:
        """Bring `host`'s link back up."""
        _ip("-n", host.namespace, "link", "set", "eth0", "up")

    def close(self) -> None:
        """Remove every namespace (their veths go with them) and the bridge. Stop their processes first."""
        for host in self.hosts.values():
            subprocess.run([ip_binary(), "netns", "del", host.namespace], capture_output=True, timeout=30)
        for link in self._links:  # gone with their namespace's peer already, normally
            subprocess.run([ip_binary(), "link", "del", link], capture_output=True, timeout=30)
        subprocess.run([ip_binary(), "link", "del", self.bridge], capture_output=True, timeout=30)
        self.hosts.clear()
        self._links.clear()
