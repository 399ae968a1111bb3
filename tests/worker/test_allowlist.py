"""Where the agent may connect: allowlist entries, names and resolved addresses."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from hookagent.settings import Settings, parse_egress_entry
from hookagent.worker.allowlist import Allowlist, Entry, is_local, model_entry


def entry(text: str) -> Entry:
    return Entry.parse(text)


@pytest.mark.parametrize(
    ("pattern", "host", "allowed"),
    [
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),  # the domain itself is not a subdomain
        ("*.example.com", "badexample.com", False),
        ("*.example.com", "example.com.evil.org", False),
        ("*.example.com", "api.example.co", False),
        ("example.com", "example.com", True),
        ("example.com", "www.example.com", False),
        ("*.EXAMPLE.com.", "api.example.com", True),  # written in any case, trailing dot
    ],
)
def test_wildcards_match_subdomains_only(pattern: str, host: str, allowed: bool) -> None:
    assert entry(pattern).matches(host, 443) is allowed


def test_an_entry_with_a_port_allows_only_that_port() -> None:
    assert entry("pypi.org").matches("pypi.org", 8443)
    assert entry("pypi.org:443").matches("pypi.org", 443)
    assert not entry("pypi.org:443").matches("pypi.org", 80)
    assert entry("[::1]:8080") == Entry("::1", 8080)
    assert entry("127.0.0.1:80").exact and not entry("*.x.org:80").exact
    assert not entry("localhost").exact


@pytest.mark.parametrize(
    "text", ["http://x.org", "x.org:0", "x.org:70000", "*", "a b", "x.org/path", "[zz::1]:1", ""]
)
def test_malformed_entries_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_egress_entry(text)
    with pytest.raises(ValueError):
        Settings(egress_allow=f"ok.org,{text}" if text else ",,x y")


def test_model_endpoints_are_exact() -> None:
    assert model_entry("http://127.0.0.1:4000") == Entry("127.0.0.1", 4000)
    assert model_entry("https://api.anthropic.com") == Entry("api.anthropic.com", 443)
    assert model_entry("http://LLM.internal/v1") == Entry("llm.internal", 80)
    assert model_entry("ftp://x.org") is None and model_entry("not a url") is None


def test_local_addresses_are_those_a_socket_can_bind() -> None:
    assert is_local(ipaddress.ip_address("127.0.0.2")) and is_local(ipaddress.ip_address("::1"))
    assert is_local(ipaddress.ip_address("0.0.0.0"))
    assert not is_local(ipaddress.ip_address("192.0.2.200"))  # TEST-NET-1: nobody's
    # A name of this host resolves to one of its own addresses.
    own = socket.gethostbyname(socket.gethostname())
    assert is_local(ipaddress.ip_address(own))


async def admitted(rules: Allowlist, host: str, port: int) -> list[str] | None:
    found = await rules.admit(host, port)
    return None if found is None else [str(a) for a in found]


async def test_hookagents_own_endpoints_stay_refused_whatever_is_listed() -> None:
    settings = Settings(
        host="0.0.0.0",
        port=8123,
        redis_url="redis://:pw@localhost:6399/0",
        public_url="https://hookagent.example.com",
        egress_allow="127.0.0.1:8123,localhost:6399,127.0.0.1:6399,hookagent.example.com:443,"
        "127.0.0.1:9000,169.254.169.254:80,[fe80::1]:80,[fd00:ec2::254]:80,100.100.100.200:80,"
        "metadata.google.internal:80,*.example.com",
    )
    rules = await Allowlist.build(settings, model_url="http://127.0.0.1:4000")
    for host, port in [
        ("127.0.0.1", 8123),  # the API on every interface
        ("localhost", 6399),  # Redis by name
        ("127.0.0.1", 6399),  # and by address
        ("::ffff:127.0.0.1", 6399),  # and written as IPv6
        ("hookagent.example.com", 443),  # the published API
        ("169.254.169.254", 80),
        ("fe80::1", 80),
        ("fd00:ec2::254", 80),
        ("100.100.100.200", 80),
        ("metadata.google.internal", 80),
    ]:
        assert await admitted(rules, host, port) is None, (host, port)
    assert await admitted(rules, "127.0.0.1", 4000) == ["127.0.0.1"]  # the model endpoint
    assert await admitted(rules, "127.0.0.1", 9000) == ["127.0.0.1"]  # listed exactly
    assert await admitted(rules, "127.0.0.1", 9001) is None
    assert await admitted(rules, "[::1]", 4000) is None  # another address, not listed


async def test_this_hosts_addresses_need_an_exact_entry() -> None:
    rules = await Allowlist.build(
        Settings(egress_allow="localhost,*.localhost,127.0.0.1", port=8124), model_url=None
    )
    # Names that lead back to this host, allowed only loosely: refused.
    for host in ("localhost", "127.0.0.1", "2130706433"):
        assert await admitted(rules, host, 5432) is None, host


async def test_names_are_checked_before_they_are_resolved() -> None:
    rules = await Allowlist.build(Settings(egress_allow="*.invalid"), model_url=None)
    # Not listed: refused without a lookup (this one would not resolve at all).
    assert await admitted(rules, "not-listed.example", 443) is None
    # Listed but unresolvable: an error for the proxy to answer 502, not a refusal.
    with pytest.raises(OSError):
        await rules.admit("nothing.invalid", 443)
