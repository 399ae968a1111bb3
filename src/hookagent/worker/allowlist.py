"""Where the agent may connect through its egress proxy: judged by name, then by address.

A name must match an entry: the agent CLI's model endpoint, ``HOOKAGENT_EGRESS_ALLOW`` or
the repository policy's ``network_allow`` (``*.example.com`` matches any subdomain, not
the domain itself; an entry without a port allows every port). The proxy then resolves the
name itself and refuses the connection if any address it got is one the agent must never
reach, whatever the lists say: link-local and cloud metadata addresses, hookagent's API and
Redis (by their resolved addresses, and by port on every address of this host). An address
of this host (loopback, any local interface) passes only for an entry naming that exact
host and port, such as a model endpoint on ``http://127.0.0.1:8080``. The connection then
goes to the addresses checked here, never to a second resolution (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hookagent.settings import Settings, parse_egress_entry, split_list

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_TIMEOUT_S = 10.0
# Cloud metadata services, by name and by the addresses outside 169.254/16 they use
# (AWS's IPv6 one, Alibaba Cloud's); every link-local address is refused anyway.
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog"})
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
)
_ALL_INTERFACES = ("", "0.0.0.0", "::")


@dataclass(frozen=True, slots=True)
class Entry:
    """One allowed ``host[:port]``; ``*.domain`` matches every subdomain of ``domain``."""

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Entry:
        """An entry as written in the settings or a policy (ValueError when malformed)."""
        host, port = parse_egress_entry(text)
        return cls(host, port)

    def matches(self, host: str, port: int) -> bool:
        """Whether ``host:port`` (a lower-case name or address) is allowed by this entry."""
        if self.port is not None and self.port != port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host

    @property
    def exact(self) -> bool:
        """Names one host and one port: the only kind that may lead to this host itself."""
        return self.port is not None and not self.host.startswith("*.")


@dataclass(frozen=True, slots=True)
class Allowlist:
    """The entries the agent may reach and the endpoints it never may."""

    entries: tuple[Entry, ...]
    # Resolved addresses of hookagent's own services, with their ports.
    denied: frozenset[tuple[IPAddress, int]] = frozenset()
    # Ports refused on every address of this host (the API and a local Redis listen there).
    denied_local_ports: frozenset[int] = frozenset()
    denied_names: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    async def build(cls, settings: Settings, *, model_url: str | None) -> Allowlist:
        """The lists in force for one run; hookagent's API and Redis resolved now."""
        entries = [Entry.parse(e) for e in split_list(settings.egress_allow)]
        model = model_entry(model_url) if model_url else None
        if model is not None:
            entries.insert(0, model)
        denied: set[tuple[IPAddress, int]] = set()
        local_ports: set[int] = set()
        names: set[tuple[str, int]] = set()
        for host, port in own_endpoints(settings):
            names.add((host, port))
            if host in _ALL_INTERFACES:
                local_ports.add(port)
                continue
            for address in await _resolve_quietly(host, port):
                denied.add((address, port))
                if is_local(address):
                    local_ports.add(port)
        return cls(tuple(entries), frozenset(denied), frozenset(local_ports), frozenset(names))

    async def admit(self, host: str, port: int) -> tuple[IPAddress, ...] | None:
        """The addresses to connect to for ``host:port``, or None when it is refused.

        Raises OSError when an allowed name does not resolve.
        """
        host = normalise(host)
        if host in METADATA_NAMES or (host, port) in self.denied_names:
            return None
        matching = [e for e in self.entries if e.matches(host, port)]
        if not matching:
            return None
        addresses = await resolve(host, port)
        exact = any(e.exact for e in matching)
        for address in addresses:
            if self.forbidden(address, port) or (is_local(address) and not exact):
                return None
        return addresses

    def forbidden(self, address: IPAddress, port: int) -> bool:
        """Never reachable, whatever the lists say."""
        if address.is_link_local or address in METADATA_ADDRESSES:
            return True
        if (address, port) in self.denied:
            return True
        return port in self.denied_local_ports and is_local(address)


def normalise(host: str) -> str:
    """A host as entries are written: lower case, no trailing dot, no IPv6 brackets."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    literal = _literal(host)
    return host if literal is None else str(plain(literal))


def model_entry(url: str) -> Entry | None:
    """The exact ``host:port`` of a model base URL (the scheme's port when none is given)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return Entry(normalise(parts.hostname), port or (443 if parts.scheme == "https" else 80))


def own_endpoints(settings: Settings) -> list[tuple[str, int]]:
    """hookagent's API (as served and as published) and its Redis, as (host, port)."""
    found = [(normalise(settings.host), settings.port)]
    for url, default in ((settings.public_url, None), (settings.redis_url or "", 6379)):
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            continue
        if parts.hostname and parts.scheme in ("http", "https", "redis", "rediss"):
            scheme_port = {"http": 80, "https": 443}.get(parts.scheme, default)
            chosen = port or scheme_port
            if chosen is not None:
                found.append((normalise(parts.hostname), chosen))
    return found


async def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address ``host`` resolves to (an address is itself), IPv4-mapped ones unwrapped."""
    literal = _literal(host)
    if literal is not None:
        return (plain(literal),)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT_S):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = dict.fromkeys(plain(ipaddress.ip_address(info[4][0])) for info in infos)
    if not found:
        raise OSError(errno.EHOSTUNREACH, f"{host} has no address")
    return tuple(found)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None  # a name


async def _resolve_quietly(host: str, port: int) -> tuple[IPAddress, ...]:
    # Our own endpoints: one that does not resolve now is still refused by name.
    try:
        return await resolve(host, port)
    except (OSError, TimeoutError):
        return ()


def plain(address: IPAddress) -> IPAddress:
    """``::ffff:127.0.0.1`` as ``127.0.0.1``: the same host, judged the same way."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_local(address: IPAddress) -> bool:
    """Whether ``address`` reaches this host: loopback, unspecified, or a local interface's.

    A local interface's address is one a socket can bind to: one syscall, no traffic.
    """
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True
