"""Who the client is (X-Forwarded-For from trusted proxies only) and what the access log keeps.

Against a real ``hookagent server``: uvicorn's access log, the sign-in throttle and the
address they name come from one place. Before, uvicorn believed X-Forwarded-For from any
loopback peer (each forged address got its own sign-in budget) and logged ``?token=``.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from hookagent.api.access_log import QuerySecretFilter, cut_query
from hookagent.api.proxies import ForwardedMiddleware, forwarded_client
from hookagent.settings import Settings
from hookagent.store.sessions import SIGNIN_ATTEMPTS_PER_MINUTE
from tests.processes import Service, free_port, process_env, start_server

TOKEN = "hkproxy-0123456789abcdef"
CLIENT = "203.0.113.7"


def serve(settings: Settings, **extra: str) -> tuple[Service, str]:
    """A ``hookagent server`` with one viewer token and its access log on; its base URL."""
    port = free_port()
    env = process_env(
        settings, HOOKAGENT_ACCESS_LOG="true", HOOKAGENT_API_TOKENS=f"viewer:{TOKEN}", **extra
    )
    return start_server(env, port), f"http://127.0.0.1:{port}"


def sign_in(base: str, forwarded: str) -> int:
    """A wrong sign-in, as from ``forwarded``; the status."""
    answer = httpx.post(
        f"{base}/ui/session",
        json={"token": "not-the-token-0123456789"},
        headers={"X-Forwarded-For": forwarded},
        timeout=10,
    )
    assert answer.headers["content-type"] == "application/json"
    return answer.status_code


@pytest.mark.timeout(120)
def test_forwarded_for_from_an_untrusted_peer_is_ignored(settings: Settings) -> None:
    server, base = serve(settings)
    try:
        # Each attempt claims another address: one budget all the same, the peer's.
        statuses = [sign_in(base, f"198.51.100.{n}") for n in range(SIGNIN_ATTEMPTS_PER_MINUTE + 1)]
        probe = httpx.get(
            f"{base}/healthz?token=abc&x=1", headers={"X-Forwarded-For": CLIENT}, timeout=10
        )
    finally:
        server.stop()
    assert statuses == [401] * SIGNIN_ATTEMPTS_PER_MINUTE + [429]
    assert probe.status_code == 200
    line = next(x for x in server.output.splitlines() if "GET /healthz" in x)
    assert "127.0.0.1:" in line and CLIENT not in line, line
    assert '"GET /healthz?token=[REDACTED]&x=1 HTTP/1.1" 200' in line, line
    assert "abc" not in server.output


@pytest.mark.timeout(120)
def test_forwarded_for_from_a_trusted_proxy_names_the_client(settings: Settings) -> None:
    server, base = serve(settings, HOOKAGENT_TRUSTED_PROXIES="10.0.0.0/8, 127.0.0.0/8")
    try:
        # The proxy appends its peer; what the client wrote before that is not believed.
        statuses = [
            sign_in(base, f"192.0.2.{n}, {CLIENT}") for n in range(SIGNIN_ATTEMPTS_PER_MINUTE + 1)
        ]
        # Another client behind the same proxy has a budget of its own.
        other = sign_in(base, "198.51.100.1")
        probe = httpx.get(
            f"{base}/healthz?api_key=k3y&page=2",
            headers={"X-Forwarded-For": f"{CLIENT}, 10.1.2.3"},
            timeout=10,
        )
    finally:
        server.stop()
    assert statuses == [401] * SIGNIN_ATTEMPTS_PER_MINUTE + [429]
    assert other == 401
    assert probe.status_code == 200
    line = next(x for x in server.output.splitlines() if "GET /healthz" in x)
    assert f'{CLIENT}:0 - "GET /healthz?api_key=[REDACTED]&page=2 HTTP/1.1" 200' in line, line
    signins = [x for x in server.output.splitlines() if "POST /ui/session" in x]
    assert f"{CLIENT}:0" in signins[0] and "198.51.100.1:0" in signins[-1]


def test_settings_refuse_a_proxy_that_is_not_an_address() -> None:
    with pytest.raises(ValueError, match=r"'proxy\.example' is not an IP address or a CIDR"):
        Settings(trusted_proxies="10.0.0.1, proxy.example")
    networks = Settings(trusted_proxies=" 10.0.0.0/8 ,::1,192.0.2.7").trusted_proxy_networks
    assert [str(n) for n in networks] == ["10.0.0.0/8", "::1/128", "192.0.2.7/32"]
    assert Settings().trusted_proxy_networks == ()


@pytest.mark.parametrize(
    ("hops", "client"),
    [
        (["203.0.113.7"], "203.0.113.7"),
        (["198.51.100.1", "203.0.113.7, 10.0.0.2"], "203.0.113.7"),
        (["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all proxies: the first of them
        (["[2001:db8::1]:443", "10.0.0.2:8080"], "2001:db8::1"),
        (["203.0.113.7, not-an-address"], None),  # the sender wrote the last hop
        (["203.0.113.7, "], "203.0.113.7"),
        ([], None),
    ],
)
def test_the_right_most_untrusted_hop_is_the_client(hops: list[str], client: str | None) -> None:
    split = [hop for header in hops for hop in header.split(",")]
    assert forwarded_client(split, lambda address: address.startswith("10.")) == client


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/healthz?token=abc&x=1", "/healthz?token=[REDACTED]&x=1"),
        ("/a?access_token=t&API_KEY=k&client_secret=s", None),
        ("/a?password=p&X-Amz-Signature=s&sig=s", None),
        ("/tasks/t/logs/ws?ticket=tk&offset=3", "/tasks/t/logs/ws?ticket=[REDACTED]&offset=3"),
        ("/a?%74oken=abc", "/a?%74oken=[REDACTED]"),  # the name as sent, decoded to compare
        ("/a?token=&q=token&page=2", "/a?token=&q=token&page=2"),
        ("/search?q=secret+stuff", "/search?q=secret+stuff"),
        ("/healthz", "/healthz"),
    ],
)
def test_secret_query_values_are_cut(target: str, logged: str | None) -> None:
    cut = cut_query(target)
    if logged is None:
        assert all(value == "[REDACTED]" for value in _values(cut)), cut
    else:
        assert cut == logged


def _values(target: str) -> list[str]:
    return [piece.partition("=")[2] for piece in target.partition("?")[2].split("&")]


def test_the_filter_rewrites_uvicorn_websocket_lines() -> None:
    """uvicorn logs WebSocket requests on its error logger, path and query in the arguments."""
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/tasks/t/logs/ws?ticket=tk-123"), None,
    )  # fmt: skip
    assert QuerySecretFilter().filter(record)
    assert record.getMessage() == (
        '127.0.0.1:5000 - "WebSocket /tasks/t/logs/ws?ticket=[REDACTED]" [accepted]'
    )


async def test_forwarded_proto_is_read_from_trusted_proxies_only() -> None:
    """Behind a TLS-terminating proxy the scheme is https (the session cookie is then Secure)."""
    seen: list[tuple[str, tuple[str, int]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["scheme"], scope["client"]))

    middleware = ForwardedMiddleware(app, trusted=Settings(trusted_proxies="10.0.0.0/8")
                                     .trusted_proxy_networks)  # fmt: skip
    headers = [(b"x-forwarded-for", CLIENT.encode()), (b"x-forwarded-proto", b"https")]
    for peer in ("10.0.0.2", "192.0.2.1"):
        scope = {"type": "http", "scheme": "http", "client": (peer, 5000), "headers": headers}
        await middleware(scope, _never, _never)
    assert seen == [("https", (CLIENT, 0)), ("http", ("192.0.2.1", 5000))]


async def _never(*_: object) -> Any:
    raise AssertionError("the test app neither receives nor sends")
