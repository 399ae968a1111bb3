"""Signing in to the web UI with API tokens configured, in a real Chromium.

A viewer signs in once and reads, without the buttons it may not use; an operator signs
in and approves; the live log follows by cookie; no URL ever carries a token.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.api import create_app
from hookagent.settings import Settings
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.helpers import fake_agent
from tests.ui.test_ui import CHROMIUM, CSP, Watched, open_page, submit

pytestmark = [
    # As in test_ui.py: CI installs chromium, so a missing one is a failure there.
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="no chromium (set HOOKAGENT_TEST_CHROMIUM)",
    ),
    pytest.mark.timeout(240),
]

VIEWER = "viewer-token-0123456789"
OPERATOR = "operator-token-0123456789"
# The page's probe before sign-in, and the wrong token tried on purpose, answer 401.
EXPECTED_401 = ("/ui/me", "/ui/session")


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


@pytest.fixture
def overrides(github: GitHubStub) -> dict[str, Any]:
    """The fake agent prints its steps 0.3 s apart; pull requests go to the GitHub stub."""
    return {
        "agent_command": fake_agent("ui", "6", "0.3"),
        "github_api_url": github.url,
        "github_token": SecretStr("ghp_test_token_value"),
    }


@pytest.fixture
async def server(settings: Settings, overrides: dict[str, Any], redis: Redis) -> AsyncIterator[str]:
    """A real server with a viewer and an operator token, on a free loopback port."""
    tokens = SecretStr(f"viewer:vera:{VIEWER},operator:olga:{OPERATOR}")
    app = create_app(settings.model_copy(update={**overrides, "api_tokens": tokens}), redis=redis)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(web.serve(sockets=[sock]))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    web.should_exit = True
    await serving
    sock.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        await chromium.close()


async def sign_in(page: Page, token: str) -> None:
    """Answer the sign-in dialog the way a person would: type the token, press Enter."""
    dialog = page.get_by_role("dialog", name="Sign in to hookagent")
    await expect(dialog).to_be_visible()
    await expect(page.get_by_label("API token")).to_be_focused()
    await page.keyboard.type(token)
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()


def unexpected(watched: Watched) -> list[str]:
    """Console errors other than the 401s the sign-in flow causes on purpose."""
    return [
        e for e in watched.errors if not ("401" in e and e.removesuffix(")").endswith(EXPECTED_401))
    ]


def tokens_in_urls(watched: Watched) -> list[str]:
    return [u for u in watched.requests if VIEWER in u or OPERATOR in u]


async def test_viewer_reads_operator_approves_by_session_cookie(
    server: str,
    browser: Browser,
    start_worker: RunWorker,
    overrides: dict[str, Any],
    tmp_path: Path,
) -> None:
    start_worker(**overrides)
    async with httpx.AsyncClient(base_url=server) as http:
        task_id = await submit(http)  # webhooks sign themselves; they take no token

    # A viewer: asked once, then the board; a wrong token first gets a clear answer.
    page, watched = await open_page(browser, server)
    response = await page.goto("/")
    assert response is not None and response.headers["content-security-policy"] == CSP
    await expect(page.get_by_label("API token")).to_be_focused()
    await page.screenshot(path=str(tmp_path / "signin-dialog.png"))
    await page.keyboard.type("not-a-token-0123456789")
    await page.keyboard.press("Enter")
    await expect(page.locator("#signin-error")).to_have_text(
        "That token is not one this server knows."
    )
    await page.get_by_label("API token").fill("")
    await sign_in(page, VIEWER)
    await expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_be_visible()
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator("#session .who")).to_have_text("vera · viewer")
    session = next(c for c in await page.context.cookies() if c["name"] == "hookagent_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict" and not session["secure"]
    assert await page.evaluate("document.cookie") == "", "scripts cannot read the session"
    await page.screenshot(path=str(tmp_path / "board-viewer.png"))

    # The task page: the live log by cookie, and no button a viewer may not use.
    await page.locator(f'tr[data-task-id="{task_id}"] a.task-link').click()
    await expect(page.locator("#log-state")).to_have_text("live")
    await expect(page.locator(".log-row", has_text="step 4: read module_4.py")).to_be_visible()
    await expect(page.locator("#task-status .badge")).to_have_text("Awaiting approval")
    assert await page.locator("#actions [data-action]").count() == 0
    await page.screenshot(path=str(tmp_path / "task-viewer.png"), full_page=True)
    await page.goto("/ui/queue")
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator("#session .who")).to_have_text("vera · viewer")

    # An operator, straight to the task page: signs in there, approves, watches it run.
    operator, seen = await open_page(browser, server)
    await operator.goto(f"/ui/tasks/{task_id}")
    await sign_in(operator, OPERATOR)
    approve = operator.locator('[data-action="approve"]')
    await expect(approve).to_be_enabled()
    await expect(operator.locator("#log-state")).to_have_text("live")
    await approve.click()
    await operator.fill("#action-input", "go ahead")
    await operator.click("#action-confirm")
    await expect(operator.locator("#action-dialog")).to_be_hidden()
    # Lines written after the approval arrive over the stream the cookie opened.
    await expect(operator.locator(".log-row", has_text="edited app.py")).to_be_visible()
    await expect(operator.locator("#task-status .badge")).to_have_text("Completed", timeout=30_000)
    await expect(operator.locator("#task-meta")).to_contain_text("olga")
    await operator.screenshot(path=str(tmp_path / "task-operator.png"), full_page=True)

    # Signing out ends the session: the next page asks again.
    await operator.click("#sign-out")
    await expect(operator.get_by_role("dialog", name="Sign in to hookagent")).to_be_visible()
    assert not [c for c in await operator.context.cookies() if c["name"] == "hookagent_session"]

    for w in (watched, seen):
        assert tokens_in_urls(w) == []
        assert w.foreign() == [], w.foreign()
        assert unexpected(w) == [], unexpected(w)
