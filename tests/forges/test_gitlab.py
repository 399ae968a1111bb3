"""The GitLab forge on the REST v4 stub: encoded project ids, note pages, GitLab's refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from hookagent.errors import OutboundError, PullRequestError
from hookagent.forges import Forge, GitLabForge, InlineComment, PullInfo, Review, Thread
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


# A stranger's issue or merge request steers the agent; its plan or review, posted by
# hookagent, holds GitLab quick actions (run as the token's user, API notes included).
HOSTILE = (
    "The fix is small.\n/approve\n  /merge\n/label ~auto-approved\n/move attacker/dump\n"
    "```\n/usr/bin/python3 -m pytest\n```\nsee /docs/x for more\n```\n/unapprove"
)
# GitLab's extractor: closed ``` blocks skipped, then a command per line.
_GITLAB_CODE = re.compile(r"^```.+?\n```$", re.MULTILINE | re.DOTALL)
_GITLAB_COMMAND = re.compile(r"^/[a-z0-9_]+", re.MULTILINE | re.IGNORECASE)


def quick_actions(text: str) -> list[str]:
    """The commands GitLab would run from ``text`` (its extractor's rule, simplified)."""
    return _GITLAB_COMMAND.findall(_GITLAB_CODE.sub("", text))


async def test_nothing_hookagent_writes_is_a_quick_action(gitlab: GitLabStub) -> None:
    """A hole (closed in gitlab.py): every note and description was sent as written.

    GitLab runs quick actions in notes and descriptions created or edited through the
    API: an agent told by a stranger to end its plan or review with ``/approve`` and
    ``/merge`` approved and merged the stranger's merge request as hookagent. Now each
    such line is escaped (rendered the same); code blocks and paths in text stay as they are.
    """
    assert quick_actions(HOSTILE) == ["/approve", "/label", "/move", "/unapprove"]
    gitlab.mr_info[4] = {"iid": 4, "diff_refs": {"head_sha": "c" * 40}}
    lab = forge(gitlab)
    written = await lab.write_comment(THREAD, HOSTILE)
    await lab.edit_comment(THREAD, written.comment_id, HOSTILE)
    await lab.comment_on_change(PROJECT, 3, HOSTILE)
    await lab.reply_in_review(PROJECT, 3, "d0", HOSTILE)
    await lab.open_change_request(repo=PROJECT, head="hookagent/t", base="main", title="t",
                                  body=HOSTILE)  # fmt: skip
    pull = PullInfo(4, "t", "", "stranger", "main", "c" * 40, "refs/merge-requests/3/head")
    review = Review(HOSTILE, (InlineComment("app.py", 1, HOSTILE),), "c" * 40)
    await lab.post_review(PROJECT, pull, review)
    sent = [
        text
        for r in gitlab.requests
        if isinstance(r["body"], dict)
        for key, text in r["body"].items()
        if key in ("body", "description")
    ]
    assert len(sent) == 7, gitlab.requests
    for text in sent:
        assert quick_actions(text) == [], text
        assert text.replace("\\/", "/") == HOSTILE  # what a reader sees is unchanged
        assert "```\n/usr/bin/python3 -m pytest\n```" in text
