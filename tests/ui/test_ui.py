"""The web UI end to end: a real server, an in-process worker with the fake agent, and
Debian's Chromium driven by Playwright (never ``playwright install``: it needs no download).

Chromium comes from ``HOOKAGENT_TEST_CHROMIUM`` or ``chromium`` on PATH; scripts/test.sh
installs it with apt-get where it can.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright, expect
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.api import create_app
from hookagent.models import NewTask, TaskKind, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.logs import NewLine
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES, fake_agent, move_to
from tests.review_rounds import PENDING_BODY, PUSHED, seed_rounds

CHROMIUM = os.environ.get("HOOKAGENT_TEST_CHROMIUM") or shutil.which("chromium")
pytestmark = [
    # CI must run these: scripts/test.sh installs chromium, so a missing one is a failure there.
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="no chromium (set HOOKAGENT_TEST_CHROMIUM)",
    ),
    pytest.mark.timeout(240),
]

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
SENTRY = (FIXTURES / "sentry-event-alert.json").read_bytes()
JSON = {"Content-Type": "application/json"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


@pytest.fixture
def ui_overrides(github: GitHubStub) -> dict[str, Any]:
    """The fake agent plans in 6 steps, 0.3 s apart (long enough to watch lines arrive);
    pull requests go to the local GitHub stub."""
    return {
        "agent_command": fake_agent("ui", "6", "0.3"),
        "github_api_url": github.url,
        "github_token": SecretStr("ghp_test_token_value"),
    }


@pytest.fixture
def ui_settings(settings: Settings, ui_overrides: dict[str, Any]) -> Settings:
    return settings.model_copy(update=ui_overrides)


@pytest.fixture
async def server(ui_settings: Settings, redis: Redis) -> AsyncIterator[str]:
    """A real uvicorn server on a free loopback port (as in tests/api/test_stream.py)."""
    app = create_app(ui_settings, redis=redis)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    port = sock.getsockname()[1]
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(web.serve(sockets=[sock]))
    yield f"http://127.0.0.1:{port}"
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


@dataclass
class Watched:
    """Every request a page made and every console error it printed."""

    base: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign(self) -> list[str]:
        own = urlsplit(self.base).netloc
        # data: and blob: URLs (ReDoc's worker) are made in the page and never leave it.
        return [
            u
            for u in self.requests
            if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != own
        ]


async def open_page(browser: Browser, base: str, *, dark: bool = False) -> tuple[Page, Watched]:
    context = await browser.new_context(
        color_scheme="dark" if dark else "light",
        viewport={"width": 1280, "height": 900},
        base_url=base,
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    watched = Watched(base)
    page.on("request", lambda request: watched.requests.append(request.url))

    def on_console(message: Any) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "") if message.location else ""
        watched.errors.append(f"{message.text} ({where})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"page error: {exc}"))
    return page, watched


async def submit(http: httpx.AsyncClient, body: bytes = SENTRY) -> str:
    response = await http.post("/webhooks/sentry", content=body, headers=JSON)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


def another_alert() -> bytes:
    """The Sentry fixture for another incident (so it is no duplicate)."""
    payload = json.loads(SENTRY)
    text = json.dumps(payload).replace('"issue_id": "', '"issue_id": "99')
    assert text != json.dumps(payload)
    return text.encode()


async def test_board_task_page_live_log_and_actions(
    server: str, browser: Browser, start_worker: RunWorker, ui_overrides: dict[str, Any]
) -> None:
    start_worker(**ui_overrides)
    page, watched = await open_page(browser, server)
    response = await page.goto("/")
    assert response is not None
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    await expect(page.locator("#live")).to_have_text("live")

    async with httpx.AsyncClient(base_url=server) as http:
        # The board learns about the task over /tasks/events: no reload, no polling.
        task_id = await submit(http)
        row = page.locator(f'tr[data-task-id="{task_id}"]')
        await expect(row).to_be_visible()
        await expect(row.locator(".source")).to_have_text("Sentry")
        await expect(row.locator(".repo")).to_have_text("acme/payments-api")
        await expect(page.locator('.count[data-status="all"] .count-n')).to_have_text("1")

        await row.locator("a.task-link").click()
        await page.wait_for_url(f"**/ui/tasks/{task_id}")
        # Lines arrive while the fake agent prints them.
        await expect(page.locator(".log-row", has_text="step 0: read module_0.py")).to_be_visible()
        await expect(page.locator("#log-state")).to_have_text("live")
        await expect(page.locator(".log-row", has_text="step 4: read module_4.py")).to_be_visible()
        # ANSI colours: the warning on stderr is yellow, total() bold.
        await expect(page.locator(".log-row .ansi-fg3", has_text="warning")).to_be_visible()
        await expect(page.locator(".log-row .ansi-bold", has_text="total()")).to_be_visible()

        await expect(page.locator("#task-status .badge")).to_have_text("Awaiting approval")
        # The plan is Markdown, rendered without running anything it contains.
        await expect(page.locator("#plan h3")).to_have_text("Guard the division in total")
        await expect(page.locator("#plan pre code")).to_contain_text("if xs else 0")
        await expect(page.locator("#plan")).to_contain_text("<script>alert(1)</script>")
        assert await page.locator("#plan script").count() == 0
        await expect(page.locator(".step.current .step-name")).to_have_text("Awaiting approval")
        await expect(page.locator(".step.done .step-name").first).to_have_text("Queued")

        # Filters: keyword with highlighted matches, then the stderr stream only.
        await page.fill("#log-q", "module_3")
        await expect(page.locator(".log-row:not([hidden])")).to_have_count(1)
        await expect(page.locator(".log-row mark")).to_have_text("module_3")
        await page.fill("#log-q", "")
        await page.check('input[name="stream"][value="stderr"]')
        await expect(page.locator(".log-row.stream-stderr:not([hidden])")).to_have_count(2)
        await expect(page.locator(".log-row.stream-stdout:not([hidden])")).to_have_count(0)
        await page.uncheck('input[name="stream"][value="stderr"]')
        await page.click("#jump-error")
        await expect(page.locator(".log-row.selected")).to_contain_text("divides by len(xs)")

        # Only the actions the transition table allows are enabled.
        await expect(page.locator('[data-action="approve"]')).to_be_enabled()
        await expect(page.locator('[data-action="retry"]')).to_be_disabled()
        await page.click('[data-action="approve"]')
        await expect(page.locator("#action-dialog")).to_be_visible()
        await page.fill("#action-input", "keep it small")
        await page.click("#action-confirm")
        await expect(page.locator("#action-dialog")).to_be_hidden()
        await expect(page.locator("#task-status .badge")).to_have_text("Completed", timeout=30_000)
        await expect(page.locator(".log-row", has_text="edited app.py")).to_be_visible()
        await expect(page.locator("#result .branch")).to_have_text(f"hookagent/{task_id}")
        await expect(page.locator("#result a.pr-link")).to_contain_text("Pull request #")
        await expect(page.locator("#log-state")).to_have_text("ended")
        await expect(page.locator('[data-action="approve"]')).to_be_disabled()
        await expect(page.locator('[data-action="cancel"]')).to_be_disabled()

        # A second task, cancelled from its page (with a reason) while it is still open.
        other = await submit(http, another_alert())
        await page.goto(f"/ui/tasks/{other}")
        await expect(page.locator('[data-action="cancel"]')).to_be_enabled()
        await page.click('[data-action="cancel"]')
        await page.fill("#action-input", "not now")
        await page.click("#action-confirm")
        await expect(page.locator("#task-status .badge")).to_have_text("Cancelled")
        await expect(page.locator(".step.current.bad .step-reason")).to_contain_text("not now")

        # Back on the board: both tasks, with their final statuses and counts.
        await page.goto("/")
        await expect(page.locator(f'tr[data-task-id="{task_id}"] .badge')).to_have_text("Completed")
        await expect(page.locator(f'tr[data-task-id="{other}"] .badge')).to_have_text("Cancelled")
        await expect(page.locator('.count[data-status="cancelled"] .count-n')).to_have_text("1")
        await page.select_option("#f-status", "completed")
        await expect(page.locator("#rows tr")).to_have_count(1)
        await page.select_option("#f-status", "")
        await page.fill("#f-q", "module_2")
        await page.click("#f-search")
        await expect(page.locator("#hits li").first).to_contain_text("module_2")
        await expect(page.locator("#hits mark").first).to_have_text("module_2")

        await page.goto("/ui/queue")
        # The in-process worker's heartbeat, as /workers lists it.
        await expect(page.locator("#workers")).to_contain_text("seen")
        await expect(page.locator("#waiting")).to_contain_text("Nothing waiting.")

    assert watched.foreign() == [], watched.foreign()
    assert watched.errors == [], watched.errors


async def big_task(store: Store, lines: int) -> str:
    """A finished task whose log holds ``lines`` entries, written straight into the store."""
    new = NewTask(source="jira", repository="acme/payments-api", title="Big log", prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    batch = 10_000
    for start in range(0, lines - 2, batch):
        rows = []
        for i in range(start, min(lines - 2, start + batch)):
            if i % 1000 == 999:
                rows.append(
                    NewLine("2026-01-01T00:00:00.000Z", "stderr", f"\x1b[31merror\x1b[0m {i}")
                )
            else:
                rows.append(NewLine("2026-01-01T00:00:00.000Z", "stdout", f"line {i} ok"))
        await store.logs.append(task_id, rows)
    await move_to(store, task_id, TaskStatus.COMPLETED, reason="done")
    return task_id


@pytest.mark.slow
async def test_200k_line_log_paints_and_scrolls_fast(
    server: str, browser: Browser, store: Store
) -> None:
    task_id = await big_task(store, 200_000)
    page, watched = await open_page(browser, server)
    await page.goto(f"/ui/tasks/{task_id}")
    loaded = "() => performance.getEntriesByName('log-loaded').length > 0"
    await page.wait_for_function(loaded, timeout=60_000)
    await expect(page.locator("#log-state")).to_have_text("ended")
    figures = await page.evaluate(
        """async () => {
          const at = (name) => performance.getEntriesByName(name)[0].startTime;
          const v = document.querySelector('.log-viewport');
          const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
          const view = window.hookagentLog;
          view.setFollow(false);
          const jumps = [];
          for (const to of [0, 0.5, 0.25, 0.75, 1]) {
            const t0 = performance.now();
            v.scrollTop = to * v.scrollHeight;
            await frame();
            jumps.push(performance.now() - t0);
          }
          const t1 = performance.now();
          v.scrollTop = v.scrollHeight;
          await frame(); await frame();
          const toEnd = performance.now() - t1;
          const t2 = performance.now();
          for (let i = 0; i < 60; i++) { v.scrollTop -= 300; await frame(); }
          const sixtyFrames = performance.now() - t2;
          v.scrollTop = v.scrollHeight; await frame();
          return {
            firstPaint: at('log-first-paint'), loaded: at('log-loaded'), toEnd,
            worstJump: Math.max(...jumps), sixtyFrames, rows: view.rowCount, size: view.size,
            domRows: document.querySelectorAll('.log-row').length,
          };
        }"""
    )
    print(  # noqa: T201 - the figures are the point of this test
        f"\n200,000-line log: first paint {figures['firstPaint']:.0f} ms after navigation, "
        f"all loaded {figures['loaded']:.0f} ms, scroll to end {figures['toEnd']:.1f} ms, "
        f"worst jump frame {figures['worstJump']:.1f} ms, 60 scroll frames "
        f"{figures['sixtyFrames']:.0f} ms, {figures['domRows']} row elements"
    )
    assert figures["rows"] == figures["size"] >= 200_000
    assert figures["domRows"] < 200
    assert figures["firstPaint"] < 3000
    assert figures["toEnd"] < 200
    assert figures["worstJump"] < 200
    await expect(page.locator(".log-row", has_text="status completed: done")).to_be_visible()
    # Keyword filter across 200,000 entries, then a permalink.
    await page.fill("#log-q", "error 99999")
    await expect(page.locator(".log-row:not([hidden])")).to_have_count(1)
    assert watched.foreign() == []
    assert watched.errors == []

    # Opening a permalink scrolls to its line and selects it; its gutter link copies it.
    page, watched = await open_page(browser, server)
    await page.goto(f"/ui/tasks/{task_id}#seq-123456")
    # The line is shown once its page has arrived, before the rest; on a busy machine that
    # can take longer than expect's default 5 s.
    await page.wait_for_function("() => window.hookagentLog.nextSeq > 123456", timeout=60_000)
    await expect(page.locator("#row-seq-123456")).to_have_class("log-row stream-stdout selected")
    await expect(page.locator("#log-detail-text")).to_have_text("line 123456 ok")
    await page.locator("#row-seq-123456 a.ln").click()
    await expect(page.locator("#log-notice")).to_contain_text("Link to line 123456 copied")
    copied = await page.evaluate("() => navigator.clipboard.readText()")
    assert copied == f"{server}/ui/tasks/{task_id}#seq-123456"
    assert watched.foreign() == []
    assert watched.errors == []


async def test_screenshots_light_and_dark(
    server: str, browser: Browser, store: Store, tmp_path: Path
) -> None:
    """Board and task page in both themes: test artifacts, or the README's docs/images/.

    HOOKAGENT_UPDATE_SCREENSHOTS=1 writes them over the committed ones; otherwise they go
    to the test's own directory, so a test run leaves the checkout as it was.
    """
    tasks = await demo_tasks(store)
    images = DOCS_IMAGES if os.environ.get("HOOKAGENT_UPDATE_SCREENSHOTS") else tmp_path
    images.mkdir(parents=True, exist_ok=True)
    for dark in (False, True):
        theme = "dark" if dark else "light"
        page, watched = await open_page(browser, server, dark=dark)
        await page.goto("/")
        await expect(page.locator("#rows tr")).to_have_count(len(tasks))
        await page.screenshot(path=str(images / f"board-{theme}.png"))
        await page.goto(f"/ui/tasks/{tasks[0]}")
        await expect(page.locator("#log-state")).to_have_text("ended")
        await page.click("#jump-error")
        await page.screenshot(path=str(images / f"task-{theme}.png"), full_page=True)
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.goto("/")
        await expect(page.locator("#rows tr")).to_have_count(len(tasks))
        await page.screenshot(path=str(images / f"board-narrow-{theme}.png"))
        assert watched.errors == []
        assert watched.foreign() == []


async def demo_tasks(store: Store) -> list[str]:
    """A handful of tasks in different states; the first has a log showing every style."""
    showcase = {
        "branch": "hookagent/coupon-fix",
        "commit": "3f9a1c2b7d4e5f60718293a4b5c6d7e8f9012345",
        "pr_url": "https://github.com/acme/payments-api/pull/43",
        "pr_number": "43",
        "total_cost_usd": "0.1873",
        "result": "branch pushed, pull request opened",
    }
    specs = [
        ("jira", "PAY-198 Add idempotency keys", TaskStatus.QUEUED, {}),
        ("sentry", "TimeoutError calling ledger service", TaskStatus.FAILED,
         {"error": "agent exited with code 1"}),
        ("jira", "PAY-231 Refund rounding off by one cent", TaskStatus.EXECUTING, {}),
        ("sentry", "ZeroDivisionError in total()", TaskStatus.PENDING_APPROVAL, {}),
        ("github", "Checkout fails for zero-rate coupons", TaskStatus.COMPLETED, showcase),
    ]  # fmt: skip
    ids = []
    for source, title, status, fields in specs:
        new = NewTask(source=source, repository="acme/payments-api", title=title, prompt="p",
                      url="https://example.invalid/issue/1")  # fmt: skip
        task_id = (await store.tasks.create(new)).task_id
        ids.append(task_id)
        if status is TaskStatus.COMPLETED:
            await store.logs.append(task_id, demo_log())
            await store.tasks.add_plan(task_id, DEMO_PLAN)
            await move_to(store, task_id, TaskStatus.DISCOVERING)
            await move_to(store, task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": DEMO_PLAN})
            await move_to(store, task_id, TaskStatus.APPROVED)
            await move_to(store, task_id, TaskStatus.EXECUTING)
            await store.tasks.save_progress(task_id, DEMO_PROGRESS)
        await move_to(store, task_id, status, fields=fields or None)
    return ids[::-1]  # newest first, as the board shows them: the showcase is first


DEMO_PLAN = """# Guard coupon maths against zero rates

1. Read `checkout/coupons.py` and its tests.
2. **Fix** `apply_coupon()` so a zero rate returns the price unchanged.
3. Add a regression test.

- [x] reproduce with `rate=0`
- [ ] run the suite

```python
if rate == 0:
    return price
```
"""

DEMO_PROGRESS = {
    "phase": "execute", "elapsed_s": 84.2, "turns": 7,
    "tool_calls": {"Read": 4, "Edit": 2, "Bash": 3}, "files_touched": ["checkout/coupons.py"],
    "todos": {"done": 3, "total": 4}, "tokens": {"input": 18211, "output": 2304},
    "cost_usd": 0.1873, "lines": 40,
}  # fmt: skip


def demo_log() -> list[NewLine]:
    ts = "2026-11-25T05:30:{:02d}.{:03d}Z"
    rows = [
        ("stdout", "\x1b[1mClaude Code\x1b[0m session s-1 (model sonnet)", "text"),
        ("stdout", "I'll look at the coupon code first.", "text"),
        ("stdout", "Read: checkout/coupons.py", "tool_use"),
        ("stdout", "\n".join(f"tool result: {n:>3}  line of coupons.py" for n in range(1, 15)),
         "tool_result"),
        ("stdout", "Bash: pytest -q tests/test_coupons.py", "tool_use"),
        ("stdout", "tool result: \x1b[31mF\x1b[0m\x1b[32m....\x1b[0m  1 failed, 4 passed",
         "tool_result"),
        ("stderr", "\x1b[33mwarning\x1b[0m: coupon rate 0 divides the discount", ""),
        ("stderr", "ZeroDivisionError: float division by zero", ""),
        ("stdout", "The rate can be zero; guarding it.", "thinking"),
        ("stdout", "Edit: checkout/coupons.py", "tool_use"),
        ("stdout", "tool result: ok", "tool_result"),
        ("stdout", "Bash: pytest -q", "tool_use"),
        ("stdout", "tool result: \x1b[32m42 passed\x1b[0m in 1.92s", "tool_result"),
        ("stdout", "result (success, 7 turns, $0.1873, 84211 ms): coupons fixed", "result"),
    ]  # fmt: skip
    return [
        NewLine(ts.format(i + 1, 17 * i % 1000), stream, message, kind)
        for i, (stream, message, kind) in enumerate(rows)
    ]


async def test_a_task_without_a_pull_request_shows_no_link(
    server: str, browser: Browser, store: Store
) -> None:
    new = NewTask(source="sentry", repository="acme/payments-api", title="t", prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    await move_to(store, task_id, TaskStatus.FAILED, fields={"error": "agent failed"})
    page, watched = await open_page(browser, server)
    await page.goto(f"/ui/tasks/{task_id}")
    await expect(page.locator("#result .error")).to_contain_text("agent failed")
    # No pr_url: no "Pull request" link (it used to point at /ui/tasks/null).
    assert await page.locator("#result a").count() == 0
    assert watched.errors == []


async def test_a_review_task_shows_its_kind_on_the_board_and_its_page(
    server: str, browser: Browser, store: Store
) -> None:
    new = NewTask(
        source="github", repository="acme/payments-api", title="Review pull request #7: median",
        prompt="p", kind=TaskKind.REVIEW, reviewed_pr=7,
    )  # fmt: skip
    task_id = (await store.tasks.create(new)).task_id
    plain = NewTask(source="sentry", repository="acme/payments-api", title="a fix", prompt="p")
    other = (await store.tasks.create(plain)).task_id
    page, watched = await open_page(browser, server)
    await page.goto("/")
    await expect(page.locator(f"tr[data-task-id='{task_id}'] .kind-tag")).to_have_text("review")
    assert await page.locator(f"tr[data-task-id='{other}'] .kind-tag").count() == 0
    await page.goto(f"/ui/tasks/{task_id}")
    await expect(page.locator("#task-meta")).to_contain_text("review of pull request #7")
    assert watched.errors == []


async def test_the_task_page_shows_review_rounds_and_comments_as_text(
    server: str, browser: Browser, store: Store
) -> None:
    new = NewTask(source="github", repository="acme/payments-api", title="rounds", prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    hostile = "<img src=x onerror=\"document.title='pwned'\"> <b>rename</b> total"
    await seed_rounds(store, task_id, inline_body=hostile)
    page, watched = await open_page(browser, server)
    async with page.context:
        await page.goto(f"/ui/tasks/{task_id}")
        await expect(page.locator("#rounds-summary")).to_have_text("2 of at most 5 rounds ran")
        await expect(page.locator("#rounds > li")).to_have_count(2)
        first, second = page.locator("#rounds > li").nth(0), page.locator("#rounds > li").nth(1)
        await expect(first.locator(".round-head strong")).to_have_text("Round 1")
        await expect(first.locator(".kind-tag")).to_have_text("review")
        await expect(first.locator(".round-head .muted").first).to_have_text("2 items")
        await expect(first.locator(".round-outcome")).to_have_text(
            f"pushed {PUSHED[:12]}; test passed"
        )
        await expect(second).to_have_class("round failed")
        await expect(second.locator(".kind-tag")).to_have_text("CI fix")
        await expect(second.locator(".round-outcome")).to_contain_text("failed: push of")
        await first.locator("summary").click()
        # A reviewer's markup is shown as the text it is, never parsed into elements.
        await expect(first.locator(".feedback-body").first).to_have_text(hostile)
        assert await page.locator("#rounds-panel img, #rounds-panel b").count() == 0
        await expect(page.locator("#rounds-waiting h3")).to_have_text(
            "Waiting for the next round: 1 item"
        )
        await expect(page.locator("#rounds-pending .feedback-body")).to_have_text(PENDING_BODY)
        assert await page.title() != "pwned"
    assert watched.errors == [], watched.errors


@pytest.mark.parametrize(("path", "rendered"), [("/redoc", "API docs by"), ("/docs", "hookagent")])
async def test_api_docs_load_nothing_from_outside(
    server: str, browser: Browser, path: str, rendered: str
) -> None:
    page, watched = await open_page(browser, server)
    await page.goto(path)
    await expect(page.get_by_text(rendered).first).to_be_visible()
    await page.wait_for_load_state("networkidle")
    # ReDoc's sidebar loaded its logo from cdn.redoc.ly: nothing may leave this host.
    assert watched.foreign() == []
    assert any(path in u for u in watched.requests) and len(watched.requests) > 2


async def test_statuses_after_the_pull_request_and_the_queue_pages_stats(
    server: str, store: Store, browser: Browser
) -> None:
    """Merged, closed and revising tasks show their own badges; the queue page counts them."""
    shown = {TaskStatus.MERGED: "Merged", TaskStatus.CLOSED: "Closed unmerged"}
    shown |= {TaskStatus.REVISING: "Revising"}
    ids: dict[TaskStatus, str] = {}
    for number, status in enumerate(shown, 41):
        new = NewTask(source="github", repository="acme/payments-api", title=status, prompt="p")
        new.regression_of = ids.get(TaskStatus.MERGED)
        task_id = ids[status] = (await store.tasks.create(new)).task_id
        fields = {"pr_number": str(number), "pr_opened_at": "2026-03-02T09:00:00.000Z"}
        await move_to(store, task_id, TaskStatus.COMPLETED, fields=fields | {"agent": "claude"})
        ended = {"pr_ended_at": "2026-03-02T12:00:00.000Z"} if status != "revising" else None
        await move_to(store, task_id, status, fields=ended)
    page, watched = await open_page(browser, server)
    async with page.context:
        await page.goto("/")
        colours = set()
        for status, label in shown.items():
            badge = page.locator(f"#rows tr[data-status='{status}'] .badge")
            await expect(badge).to_have_text(label)
            colours.add(await badge.evaluate("e => getComputedStyle(e).backgroundColor"))
        assert len(colours) == len(shown), colours  # each its own colour, none the default
        await expect(page.locator("#f-status option[value='merged']")).to_have_text("Merged")

        await page.goto("/ui/queue")
        row = page.locator("#changes tr[data-repository='acme/payments-api'] td")
        await expect(row).to_have_text(
            [
                "acme/payments-api",
                "github",
                "claude",
                "3",
                "1",
                "1",
                "50%",
                "3 h 0 min",
                "0.0",
                "0.0",
            ]
        )
        await expect(page.locator("#changes tr.total td").first).to_have_text("All")

        # The task page's timeline goes on past "Completed"; a regression links its origin.
        await page.goto(f"/ui/tasks/{ids[TaskStatus.CLOSED]}")
        current = page.locator("#timeline li[aria-current='step']")
        await expect(current).to_contain_text("Closed unmerged")
        await expect(current).to_have_class("step current bad")
        await expect(page.locator("#timeline li.done").last).to_contain_text("Completed")
        origin = page.locator(f"#task-meta a[href='/ui/tasks/{ids[TaskStatus.MERGED]}']")
        await expect(origin).to_have_text(ids[TaskStatus.MERGED])
    assert watched.foreign() == [], watched.foreign()
    assert watched.errors == [], watched.errors
