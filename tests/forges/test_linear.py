"""The Linear GraphQL client on the stub: the mutations sent, the thread read, Linear's refusals."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from hookagent.errors import OutboundError
from hookagent.forges.linear import LinearClient
from tests.linear_stub import LinearStub

ISSUE = "5f0e9a8b-3c4d-4e1f-8a7b-6c5d4e3f2a1b"


@pytest.fixture
def linear() -> Iterator[LinearStub]:
    with LinearStub() as stub:
        yield stub


def client(linear: LinearStub, key: str = LinearStub.KEY) -> LinearClient:
    return LinearClient(api_url=linear.api_url, api_key=key, timeout=30)


async def test_write_then_edit_one_comment_with_the_key_as_is(linear: LinearStub) -> None:
    comment_id = await client(linear).write_comment(ISSUE, "first")
    assert await client(linear).edit_comment(comment_id, "second") == comment_id
    assert linear.comments[comment_id]["body"] == "second"
    assert [w["op"] for w in linear.writes()] == ["commentCreate", "commentUpdate"]
    assert linear.writes()[0]["variables"] == {"issueId": ISSUE, "body": "first"}
    assert {r["headers"]["Authorization"] for r in linear.requests} == {LinearStub.KEY}


async def test_thread_oldest_first_with_who_wrote_what(linear: LinearStub) -> None:
    issue = linear.issue(ISSUE, description="the description")
    issue["comments"] += [
        {
            "id": "c2",
            "body": "later",
            "createdAt": "2026-01-02T00:00:00.000Z",
            "user": {"id": "u2", "name": "Bo"},
            "botActor": None,
        },
        {
            "id": "c1",
            "body": "earlier",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "user": {"id": "u1", "name": "Ana"},
            "botActor": None,
        },
        {
            "id": "c3",
            "body": "synced",
            "createdAt": "2026-01-03T00:00:00.000Z",
            "user": None,
            "botActor": {"name": "GitHub"},
        },
    ]
    found = await client(linear).fetch_thread(ISSUE)
    assert [(c.comment_id, c.author, c.by_bot) for c in found] == [
        ("c1", "Ana", False),
        ("c2", "Bo", False),
        ("c3", "", True),
    ]


async def test_the_newest_comments_are_read_oldest_first(linear: LinearStub) -> None:
    issue = linear.issue(ISSUE)
    # Stored newest first: the stub's unpinned order is not the order of creation.
    issue["comments"] += [
        {
            "id": f"c{n:03}",
            "body": str(n),
            "createdAt": f"2026-01-01T00:{n // 60:02}:{n % 60:02}Z",
            "user": {"id": "u1", "name": "Ana"},
            "botActor": None,
        }
        for n in reversed(range(130))
    ]
    found = await client(linear).fetch_thread(ISSUE)
    assert [c.body for c in found] == [str(n) for n in range(30, 130)]


async def test_refusals_say_whether_to_retry(linear: LinearStub) -> None:
    with pytest.raises(OutboundError) as unauthorised:
        await client(linear, key="lin_api_wrong").write_comment(ISSUE, "x")
    assert "401" in unauthorised.value.message and not unauthorised.value.retryable
    # GraphQL errors come with a 200: still a failure, not a success without a comment.
    with pytest.raises(OutboundError) as missing:
        await client(linear).edit_comment("no-such-comment", "x")
    assert "Entity not found" in missing.value.message and not missing.value.retryable
    with pytest.raises(OutboundError) as no_issue:
        await client(linear).fetch_thread("no-such-issue")
    assert not no_issue.value.retryable


async def test_rate_limited_and_server_errors_are_retryable(linear: LinearStub) -> None:
    # Linear's rate limit: HTTP 400 with the RATELIMITED code in the error's extensions.
    limited = {
        "errors": [{"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}]
    }
    for answer in ((400, limited), (503, {"errors": [{"message": "unavailable"}]})):
        linear.fail_with = answer
        with pytest.raises(OutboundError) as refused:
            await client(linear).write_comment(ISSUE, "x")
        assert refused.value.retryable, answer
    linear.fail_with = (400, {"errors": [{"message": "Argument Validation Error"}]})
    with pytest.raises(OutboundError) as invalid:
        await client(linear).write_comment(ISSUE, "x")
    assert not invalid.value.retryable and "Argument Validation Error" in invalid.value.message


async def test_unreachable_is_retryable() -> None:
    # A port bound but not listening, held for the whole test: refused, and no other
    # process can take it meanwhile (a just-freed port could be reused by anyone).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}/graphql"
        with pytest.raises(OutboundError) as down:
            await LinearClient(api_url=url, api_key="k", timeout=30).write_comment(ISSUE, "x")
    assert "unreachable" in down.value.message
    assert down.value.retryable
