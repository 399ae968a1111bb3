"""HOOKAGENT_FORGE_TIMEOUT bounds every request to a forge's API: a silent one fails, soon."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator

import pytest
from pydantic import SecretStr

from hookagent.errors import HookagentError
from hookagent.forges import GitHubForge, GitLabForge, Thread
from hookagent.forges.linear import LinearClient
from hookagent.forges.sentry import SentryApi
from hookagent.settings import Settings

THREAD = Thread("acme/payments-api", 7)
# Far below the old fixed 30 s, far above the setting: only the setting can end the call.
DEADLINE_S = 10.0


@pytest.fixture
def silent() -> Iterator[Settings]:
    """Settings whose every API is a port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # the kernel completes handshakes; nobody ever reads or replies
        host, port = sock.getsockname()[:2]
        url = f"http://{host}:{port}"
        yield Settings(
            forge_timeout=0.3,
            github_api_url=url,
            github_token=SecretStr("gh-token-1"),
            gitlab_api_url=f"{url}/api/v4",
            gitlab_token=SecretStr("gl-token-1"),
            linear_api_url=f"{url}/graphql",
            linear_api_key=SecretStr("lin-key-1"),
            sentry_api_url=url,
            sentry_api_token=SecretStr("sentry-token-1"),
        )


def calls(s: Settings) -> dict[str, Callable[[], Awaitable[object]]]:
    """One request of each kind hookagent makes to an outside API, built from ``s``."""
    github, gitlab = GitHubForge.from_settings(s), GitLabForge.from_settings(s)
    linear, sentry = LinearClient.from_settings(s), SentryApi.from_settings(s)
    assert github and gitlab and linear and sentry
    return {
        "github pull request": lambda: github.open_change_request(
            repo=THREAD.repo, head="hookagent/t", base="main", title="t", body="b"
        ),
        "github comment": lambda: github.write_comment(THREAD, "b"),
        "github comment edit": lambda: github.edit_comment(THREAD, "5", "b"),
        "github thread": lambda: github.fetch_thread(THREAD),
        "gitlab merge request": lambda: gitlab.open_change_request(
            repo=THREAD.repo, head="hookagent/t", base="main", title="t", body="b"
        ),
        "gitlab thread": lambda: gitlab.fetch_thread(THREAD),
        "linear comment": lambda: linear.write_comment("LIN-1", "b"),
        "sentry event": lambda: sentry.latest_event("42"),
    }


KINDS = (
    "github pull request",
    "github comment",
    "github comment edit",
    "github thread",
    "gitlab merge request",
    "gitlab thread",
    "linear comment",
    "sentry event",
)


def test_every_kind_of_call_is_tried(silent: Settings) -> None:
    assert sorted(calls(silent)) == sorted(KINDS)


@pytest.mark.parametrize("name", KINDS)
async def test_a_silent_api_fails_within_the_forge_timeout(silent: Settings, name: str) -> None:
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(DEADLINE_S):
        with pytest.raises(HookagentError, match="unreachable: ReadTimeout"):
            await calls(silent)[name]()
    assert asyncio.get_running_loop().time() - started < 5 * silent.forge_timeout


def test_the_forge_timeout_has_bounds() -> None:
    assert Settings().forge_timeout == 30
    for refused in (0, -1, 601):
        with pytest.raises(ValueError, match="forge_timeout"):
            Settings(forge_timeout=refused)
