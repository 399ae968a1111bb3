"""The GitHub forge's one thread reader on the REST stub: pages by ``Link``, authors, bots."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hookagent.forges import Forge, GitHubForge, Thread
from hookagent.forges.github import MAX_PAGES, PER_PAGE
from tests.github_stub import GitHubStub

THREAD = Thread("acme/payments-api", 412)
TOKEN = "ghp_test_token_value"


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


def forge(github: GitHubStub) -> Forge:
    # Typed as the protocol: mypy checks GitHubForge implements it.
    return GitHubForge(api_url=github.url, token=TOKEN, timeout=30)


def comment(n: int, login: str = "ana", kind: str = "User") -> dict[str, Any]:
    at = f"2025-01-01T10:{n % 60:02d}:00Z"
    user = {"login": login, "type": kind}
    return {
        "id": n,
        "body": f"comment {n}",
        "user": user,
        "created_at": at,
        "html_url": f"https://c/{n}",
    }


def pages_asked(github: GitHubStub) -> list[str]:
    return [r["path"].rpartition("&page=")[2] for r in github.requests if r["method"] == "GET"]


async def test_pages_are_read_while_github_links_a_next_one(github: GitHubStub) -> None:
    # Exactly two full pages: a reader that stops on a short page asks for an empty third.
    github.thread = [comment(n) for n in range(2 * PER_PAGE)]
    found = await forge(github).fetch_thread(THREAD)
    assert [c.body for c in found] == [f"comment {n}" for n in range(2 * PER_PAGE)]
    assert pages_asked(github) == ["1", "2"]
    assert all(f"per_page={PER_PAGE}" in r["path"] for r in github.requests)
    first = found[0]
    assert (first.author, first.at, first.url, first.by_bot) == (
        "ana", "2025-01-01T10:00:00Z", "https://c/0", False,
    )  # fmt: skip


async def test_a_long_thread_is_read_up_to_the_page_cap(github: GitHubStub) -> None:
    github.thread = [comment(n) for n in range((MAX_PAGES + 2) * PER_PAGE)]
    found = await forge(github).fetch_thread(THREAD)
    assert len(found) == MAX_PAGES * PER_PAGE
    assert pages_asked(github) == [str(n) for n in range(1, MAX_PAGES + 1)]


async def test_bots_are_marked_for_the_readers_to_leave_out(github: GitHubStub) -> None:
    github.thread = [comment(1), comment(2, "ci-bot", "Bot"), {"id": 3, "user": None}]
    found = await forge(github).fetch_thread(THREAD)
    assert [(c.author, c.by_bot) for c in found] == [("ana", False), ("ci-bot", True), ("", False)]


async def test_a_reply_goes_under_the_review_comment(github: GitHubStub) -> None:
    reply = await forge(github).reply_in_review("acme/payments-api", 41, "501", "Addressed")
    assert github.replies == [{"number": 41, "comment_id": 501, "body": "Addressed"}]
    assert github.requests[-1]["path"] == "/repos/acme/payments-api/pulls/41/comments/501/replies"
    assert reply.comment_id == "7000"


async def test_failed_checks_read_output_annotations_and_the_actions_log(
    github: GitHubStub,
) -> None:
    sha = "ab12" * 10
    github.add_failed_run(sha, 61, log="step\nboom: failed", annotations=("x is None",))
    passed = github.add_failed_run(sha, 62, name="lint", conclusion="success")
    other = github.add_failed_run(sha, 63, name="codecov/patch", log="unused")
    other["app"] = {"slug": "codecov"}  # not GitHub Actions: no job log to read
    github.job_logs.pop(61)  # the log expired: the rest is still read
    checks = await forge(github).failed_checks("acme/payments-api", sha, None)
    assert [c.name for c in checks] == ["test (3.12)", "codecov/patch"]
    assert "test (3.12) failed" in checks[0].details
    assert ".github:1: failure: x is None" in checks[0].details
    assert checks[0].log == "(log unavailable: GitHub answered 404)"
    assert checks[1].log == ""
    assert passed["conclusion"] == "success"
    asked = [r["path"] for r in github.requests]
    assert "/repos/acme/payments-api/actions/jobs/63/logs" not in asked
    assert f"/repos/acme/payments-api/commits/{sha}/check-runs?filter=latest&per_page=100" in asked
