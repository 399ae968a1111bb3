"""The GitLab forge on the REST v4 stub: encoded project ids, note pages, GitLab's refusals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hookagent.errors import OutboundError, PullRequestError
from hookagent.forges import Forge, GitLabForge, Thread
from tests.gitlab_stub import BOT, GitLabStub

PROJECT = "acme/platform/payments-api"
THREAD = Thread(PROJECT, 57)


@pytest.fixture
def gitlab() -> Iterator[GitLabStub]:
    with GitLabStub() as stub:
        yield stub


def forge(gitlab: GitLabStub, token: str = GitLabStub.TOKEN) -> Forge:
    # Typed as the protocol: mypy checks GitLabForge implements it.
    return GitLabForge(api_url=gitlab.api_url + "/", token=token, timeout=30)


async def test_merge_request_and_a_second_one_for_the_same_branch(gitlab: GitLabStub) -> None:
    opened = await forge(gitlab).open_change_request(
        repo=PROJECT, head="hookagent/t", base="main", title="t", body="b"
    )
    assert (opened.number, opened.ref, opened.label) == (1, f"{PROJECT}!1", "merge request !1")
    assert (
        gitlab.requests[0]["path"]
        == "/api/v4/projects/acme%2Fplatform%2Fpayments-api/merge_requests"
    )
    with pytest.raises(PullRequestError) as refused:
        await forge(gitlab).open_change_request(
            repo=PROJECT, head="hookagent/t", base="main", title="t", body="b"
        )
    assert refused.value.message == (
        "GitLab answered 409: Another open merge request already exists for this source branch: !1"
    )


async def test_thread_is_read_page_by_page_oldest_first(gitlab: GitLabStub) -> None:
    for number in range(130):
        gitlab.notes[number] = {"id": number, "body": f"note {number}", "author": BOT,
                                "noteable_iid": 57}  # fmt: skip
    gitlab.notes[500] = {"id": 500, "body": "elsewhere", "author": BOT, "noteable_iid": 58}
    thread = await forge(gitlab).fetch_thread(THREAD)
    assert [c.body for c in thread] == [f"note {n}" for n in range(130)]
    assert {c.author for c in thread} == {"hookagent-bot"}
    pages = [r["query"]["page"] for r in gitlab.requests]
    assert pages == ["1", "2"]
    assert gitlab.requests[0]["query"]["per_page"] == "100"


async def test_edit_writes_the_note_in_place(gitlab: GitLabStub) -> None:
    written = await forge(gitlab).write_comment(THREAD, "first")
    edited = await forge(gitlab).edit_comment(THREAD, written.comment_id, "second")
    assert edited.comment_id == written.comment_id and len(gitlab.notes) == 1
    assert gitlab.notes[int(written.comment_id)]["body"] == "second"
    with pytest.raises(OutboundError, match="GitLab answered 404") as missing:
        await forge(gitlab).edit_comment(Thread(PROJECT, 58), written.comment_id, "x")
    assert not missing.value.retryable


async def test_refusals_say_whether_a_retry_may_work(gitlab: GitLabStub) -> None:
    with pytest.raises(OutboundError) as unauthorized:
        await forge(gitlab, token="glpat-wrong").write_comment(THREAD, "x")
    assert unauthorized.value.message == "GitLab answered 401: 401 Unauthorized"
    assert not unauthorized.value.retryable
    gitlab.fail_with = (429, {"message": "Retry later"}, {"Retry-After": "7"})
    with pytest.raises(OutboundError) as limited:
        await forge(gitlab).write_comment(THREAD, "x")
    assert limited.value.retryable and limited.value.retry_after == 7
    gitlab.fail_with = (400, {"message": {"source_branch": ["is invalid"]}}, {})
    with pytest.raises(PullRequestError, match="GitLab answered 400: source_branch is invalid"):
        await forge(gitlab).open_change_request(
            repo=PROJECT, head="x y", base="main", title="t", body="b"
        )


async def test_review_replies_go_into_the_discussion_and_the_merge_request(
    gitlab: GitLabStub,
) -> None:
    discussion = "3f1c0e7d9b2a4c6e8f0a1b2c3d4e5f60718293a4"
    reply = await forge(gitlab).reply_in_review(PROJECT, 3, discussion, "Addressed in 1a2b")
    said = await forge(gitlab).comment_on_change(PROJECT, 3, "max_rounds reached")
    assert [n["discussion_id"] for n in gitlab.mr_notes] == [discussion, None]
    assert (reply.body, said.body) == ("Addressed in 1a2b", "max_rounds reached")
    paths = [r["path"] for r in gitlab.requests]
    assert paths == [
        f"/api/v4/projects/acme%2Fplatform%2Fpayments-api/merge_requests/3/discussions/{discussion}/notes",
        "/api/v4/projects/acme%2Fplatform%2Fpayments-api/merge_requests/3/notes",
    ]
    # A discussion id from a payload is one path segment, whatever it holds.
    await forge(gitlab).reply_in_review(PROJECT, 3, "../../issues/1", "x")
    assert gitlab.requests[-1]["path"].endswith("/discussions/..%2F..%2Fissues%2F1/notes")


async def test_a_draft_merge_request_has_the_draft_prefix(gitlab: GitLabStub) -> None:
    await forge(gitlab).open_change_request(
        repo=PROJECT, head="hookagent/d", base="main", title="hookagent: t", body="b", draft=True
    )
    assert gitlab.requests[0]["body"]["title"] == "Draft: hookagent: t"
