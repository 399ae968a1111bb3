"""Review rounds end to end: GitHub review webhooks → one round → a commit, replies, the comment."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.agents import build_agent
from hookagent.models import NewTask, TaskStatus
from hookagent.notify import Notifier
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.loop import Worker
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.gitlab_stub import GitLabStub
from tests.helpers import (
    FIXTURES,
    REPO,
    app_client,
    fake_agent,
    lines_of,
    make_remote,
    stream_entries,
    wait_for_line,
    wait_status,
)

SECRET = "gh-webhook-s3cret"
GITLAB_SECRET = "gitlab-hook-token-5d1e0c"
JSON = {"content-type": "application/json"}
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
GIT_ENV = {"GIT_AUTHOR_NAME": "kim", "GIT_AUTHOR_EMAIL": "kim@example.com",
           "GIT_COMMITTER_NAME": "kim", "GIT_COMMITTER_EMAIL": "kim@example.com"}  # fmt: skip


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


@pytest.fixture
async def start_worker(store: Store, settings: Settings) -> AsyncIterator[RunWorker]:
    """Conftest's, stopped by its event instead: a round's job is acked before teardown."""
    stop = asyncio.Event()
    running: list[asyncio.Task[None]] = []

    def start(**overrides: object) -> Worker:
        mine = settings.model_copy(update=overrides)
        worker = Worker(
            store=Store.build(store.redis, mine), settings=mine, agent=build_agent(mine)
        )
        running.append(asyncio.create_task(worker.run(stop)))
        return worker

    yield start
    stop.set()
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


@pytest.fixture
def own(settings: Settings, github: GitHubStub, tmp_path: Path) -> Settings:
    policy = tmp_path / "hookagent.toml"
    policy.write_text(f'[repo."{REPO}"]\nmax_rounds = 2\nreviewers = ["id:7777"]\n')
    return settings.model_copy(
        update={
            "github_api_url": github.url,
            "github_token": SecretStr("ghp_test_token_value"),
            "github_webhook_secret": SecretStr(SECRET),
            "github_approvers": "rev-alice",
            "feedback_debounce_s": 0.4,
            "policy_file": policy,
            "agent_command": fake_agent("auto"),
        }
    )


@pytest.fixture
async def http(own: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(own, redis) as client:
        yield client


@pytest.fixture
async def notifier(own: Settings, store: Store) -> AsyncIterator[Notifier]:
    stop = asyncio.Event()
    running = Notifier(store=Store.build(store.redis, own), settings=own)
    task = asyncio.create_task(running.run(stop))
    yield running
    stop.set()
    await asyncio.wait([task], timeout=10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def deliver(
    http: httpx.AsyncClient,
    event: str,
    payload: dict[str, Any],
    delivery: str,
    *,
    sign: bool = True,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = JSON | {"x-github-event": event, "x-github-delivery": delivery}
    if sign:
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers["x-hub-signature-256"] = f"sha256={digest}"
    return await http.post("/webhooks/github", content=body, headers=headers)


async def opened(
    http: httpx.AsyncClient,
    store: Store,
    start_worker: RunWorker | None,
    own: Settings,
    **worker: Any,
) -> tuple[str, int]:
    """A task from a GitHub issue, planned, approved and executed: its pull request is open."""
    if start_worker is not None:
        start_worker(**(own.model_dump() | worker))
    new = NewTask(source="github", repository=REPO, title="Guard the division", prompt="p",
                  external_id=f"{REPO}#7")  # fmt: skip
    tid = (await store.tasks.create(new)).task_id
    assert await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL}) is not None
    assert (await http.post(f"/tasks/{tid}/approve")).status_code == 200
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    number = (await store.tasks.get(tid)).pr_number
    assert number is not None
    return tid, number


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=os.environ | GIT_ENV, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip()


def branch_log(remotes: Path, branch: str) -> list[str]:
    """The subjects of the branch's commits on the remote, newest first."""
    return git("log", "--format=%s", branch, cwd=remotes / f"{REPO}.git").splitlines()


async def wait_count(store: Store, tid: str, needle: str, count: int) -> None:
    """Block on the task's log (XREAD BLOCK) until ``count`` lines hold ``needle``."""
    last, seen = "0-0", 0
    async with asyncio.timeout(30):
        while seen < count:
            reply = await store.redis.xread({store.keys.logs(tid): last}, block=1000, count=1000)
            if entries := stream_entries(reply):
                last = entries[-1][0]
                seen += sum(needle in line.message for line in lines_of(entries))


async def round_done(store: Store, tid: str, number: int) -> None:
    await wait_for_line(store, tid, f"status completed: review round {number} ")


async def test_three_inline_comments_make_one_round(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, notifier: Notifier, remotes: Path,
) -> None:  # fmt: skip
    tid, number = await opened(http, store, start_worker, own)
    branch = f"hookagent/{tid}"
    before = branch_log(remotes, branch)
    # The review: its summary is empty (the comments come apart), then three inline comments.
    review = await deliver(http, "pull_request_review", github.review_event(number, 880), "r-0")
    assert review.json()["status"] == "ignored"
    for n, comment_id in enumerate((501, 502, 503)):
        event = github.review_comment_event(number, comment_id, body=f"Please rename item {n}",
                                            line=2 + n)  # fmt: skip
        answer = await deliver(http, "pull_request_review_comment", event, f"c-{comment_id}")
        assert answer.status_code == 202, answer.text
        assert answer.json()["round_queued"] is (n == 0)
    # A retried delivery, and a replay under a new header: the same comment, added once.
    event = github.review_comment_event(number, 503, body="Please rename item 2", line=4)
    for delivery in ("c-503", "c-503-replayed"):
        again = await deliver(http, "pull_request_review_comment", event, delivery)
        assert again.json()["status"] == "duplicate"

    await round_done(store, tid, 1)
    task = await store.tasks.get(tid)
    assert task.status is TaskStatus.COMPLETED and task.review_rounds == 1
    # One new commit on the same branch, on top of the execution's.
    after = branch_log(remotes, branch)
    assert after == ["hookagent: address review (round 1)", *before]
    assert task.commit == git("rev-parse", branch, cwd=remotes / f"{REPO}.git")
    # The prompt held every comment with its place and diff hunk, fenced.
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    said = [e.message for e in entries]
    for n in range(3):
        assert (
            f"[stdout] round| Item {n + 1}: inline by rev-alice on app.py, line {2 + n} "
            "(RIGHT side)" in said
        )
        assert f"[stdout] round| Please rename item {n}" in said
    assert "[stdout] round| @@ -1,2 +1,5 @@" in said
    # One reply under each of the three comments, naming the commit.
    assert sorted(r["comment_id"] for r in github.replies) == [501, 502, 503]
    assert all(r["number"] == number for r in github.replies)
    assert all(f"Addressed in {task.commit[:12]}" in r["body"] for r in github.replies)
    assert all("hookagent:" in r["body"] for r in github.replies)  # never taken as feedback
    # The status comment on the issue was edited: revising, then delivered with one round.
    async with asyncio.timeout(30):
        await notifier.wait_acked(8)
    edits = [r for r in github.comment_requests() if r["method"] == "PATCH"]
    # (each edit shows the task as it is when sent: ``revising`` may be over by then)
    last = edits[-1]["body"]["body"]
    assert f"Review rounds: 1 · last: review round 1 pushed {task.commit[:12]}" in last
    # hookagent's own reply, delivered back as a review comment, is no feedback.
    own_reply = github.review_comment_event(number, 504, body=github.replies[0]["body"])
    answer = await deliver(http, "pull_request_review_comment", own_reply, "c-504")
    assert answer.json()["status"] == "ignored"


async def test_a_comment_during_a_round_makes_the_next_round(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, remotes: Path,
) -> None:  # fmt: skip
    tid, number = await opened(
        http, store, start_worker, own, agent_command=fake_agent("auto", "ticks", "6", "0.3")
    )
    first = github.review_comment_event(number, 601, body="Rename total")
    assert (await deliver(http, "pull_request_review_comment", first, "d-1")).status_code == 202
    await wait_for_line(store, tid, "review round 1: 1 items to address")
    # While round 1 runs: an ``@hookagent`` comment with free text on the pull request.
    mention = github.pr_comment_event(number, 602, "@hookagent please also add a docstring")
    during = await deliver(http, "issue_comment", mention, "d-2")
    assert during.status_code == 202 and during.json()["round_queued"] is False
    await round_done(store, tid, 1)
    await round_done(store, tid, 2)
    task = await store.tasks.get(tid)
    assert task.review_rounds == 2 and task.status is TaskStatus.COMPLETED
    rounds = await store.reviews.rounds(tid)
    assert [[i["body"] for i in r["items"]] for r in rounds] == [
        ["Rename total"],
        ["please also add a docstring"],
    ]
    # What each round pushed, as GET /tasks/{id} shows it: the commit the outcome names.
    for record in rounds:
        assert record["outcome"] == f"pushed {record['commit'][:12]}" and not record["error"]
    assert rounds[0]["finished_at"] < rounds[1]["finished_at"]
    subjects = branch_log(remotes, f"hookagent/{tid}")
    assert subjects[:2] == ["hookagent: address review (round 2)",
                            "hookagent: address review (round 1)"]  # fmt: skip
    # Round 2's prompt recalled round 1 (fenced), and held the mention as its one item.
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    said = [e.message for e in entries]
    assert "[stdout] round| Item 1: comment by rev-alice" in said
    assert any(m.startswith("[stdout] round| Round 1: pushed ") for m in said)
    # Only inline comments get replies: one, under the first round's comment.
    assert [r["comment_id"] for r in github.replies] == [601]


async def test_feedback_from_others_bots_and_unsigned_deliveries_changes_nothing(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, remotes: Path,
) -> None:  # fmt: skip
    tid, number = await opened(http, store, start_worker, own)
    stranger = github.review_comment_event(number, 701, by="mallory", user_id=9999)
    answer = await deliver(http, "pull_request_review_comment", stranger, "s-1")
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    assert "mallory is not in HOOKAGENT_GITHUB_APPROVERS" in answer.json()["reason"]
    bot = github.review_comment_event(number, 702, by="ci[bot]", user_type="Bot")
    answer = await deliver(http, "pull_request_review_comment", bot, "s-2")
    assert answer.json()["status"] == "ignored"
    unsigned = github.review_comment_event(number, 703)
    refused = await deliver(http, "pull_request_review_comment", unsigned, "s-3", sign=False)
    assert refused.status_code == 401
    assert await store.reviews.pending(tid) == []
    task = await store.tasks.get(tid)
    assert task.status is TaskStatus.COMPLETED and task.review_rounds == 0
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    assert not any("review round" in e.message for e in entries)
    # A policy reviewer (by user id) may drive it, though not an approver.
    kim = github.review_comment_event(number, 704, by="kim", user_id=7777)
    assert (await deliver(http, "pull_request_review_comment", kim, "s-4")).status_code == 202
    await round_done(store, tid, 1)


async def test_human_commits_survive_a_round(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, remotes: Path, tmp_path: Path,
) -> None:  # fmt: skip
    tid, number = await opened(http, store, start_worker, own)
    branch = f"hookagent/{tid}"
    # A person pushes a commit of their own to the pull request's branch.
    human = tmp_path / "human"
    git("clone", "-q", "--branch", branch, str(remotes / f"{REPO}.git"), str(human), cwd=tmp_path)
    (human / "NOTES.md").write_text("kim's notes\n")
    git("add", "NOTES.md", cwd=human)
    git("commit", "-q", "-m", "kim: add notes", cwd=human)
    git("push", "-q", "origin", branch, cwd=human)
    event = github.review_comment_event(number, 801, body="Rename total")
    assert (await deliver(http, "pull_request_review_comment", event, "h-1")).status_code == 202
    await round_done(store, tid, 1)
    subjects = branch_log(remotes, branch)
    assert subjects[:2] == ["hookagent: address review (round 1)", "kim: add notes"]
    shown = git("show", f"{branch}:NOTES.md", cwd=remotes / f"{REPO}.git")
    assert shown == "kim's notes"


async def test_an_agent_rewriting_its_git_changes_nothing_of_the_branch(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, remotes: Path, tmp_path: Path,
) -> None:  # fmt: skip
    markers, decoy = tmp_path / "markers", tmp_path / "decoy.git"
    markers.mkdir()
    git("init", "-q", "--bare", str(decoy), cwd=tmp_path)
    agent = fake_agent("auto", "vandal", str(markers), str(decoy))
    tid, number = await opened(http, store, start_worker, own, agent_command=agent)
    branch = f"hookagent/{tid}"
    human = tmp_path / "human"
    git("clone", "-q", "--branch", branch, str(remotes / f"{REPO}.git"), str(human), cwd=tmp_path)
    (human / "NOTES.md").write_text("kim's notes\n")
    git("add", "NOTES.md", cwd=human)
    git("commit", "-q", "-m", "kim: add notes", cwd=human)
    git("push", "-q", "origin", branch, cwd=human)
    event = github.review_comment_event(number, 951, body="Rename total")
    assert (await deliver(http, "pull_request_review_comment", event, "v-1")).status_code == 202
    await round_done(store, tid, 1)
    entries, _ = await store.logs.read(tid, offset=0, limit=-1)
    said = [e.message for e in entries]
    assert "[stdout] git reset --soft: exit 0" in said  # it did rewrite its own copy
    # hookagent committed from its own git dir: on top of the person's commit, to the remote
    # the task was cloned from, and no hook the agent planted ever ran.
    assert branch_log(remotes, branch)[:2] == ["hookagent: address review (round 1)",
                                               "kim: add notes"]  # fmt: skip
    assert git("show", f"{branch}:NOTES.md", cwd=remotes / f"{REPO}.git") == "kim's notes"
    assert list(markers.iterdir()) == []
    assert git("for-each-ref", cwd=decoy) == ""


async def test_a_round_handed_back_starts_again_with_its_feedback(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, remotes: Path,
) -> None:  # fmt: skip
    slow = own.model_copy(update={"agent_command": fake_agent("auto", "ticks", "10", "0.3")})
    first = Worker(store=Store.build(store.redis, slow), settings=slow, agent=build_agent(slow))
    running = asyncio.create_task(first.run(asyncio.Event()))
    try:
        tid, number = await opened(http, store, None, own)
        event = github.review_comment_event(number, 961, body="Rename total")
        assert (await deliver(http, "pull_request_review_comment", event, "w-1")).status_code == 202
        await wait_count(store, tid, "[stdout] tick 0", 2)  # the execution ticked too
    finally:
        running.cancel()  # the worker stops mid-round: the job goes back to the queue
        await asyncio.gather(running, return_exceptions=True)
    assert (await store.tasks.get(tid)).status is TaskStatus.REVISING
    start_worker(**own.model_dump())
    await round_done(store, tid, 1)
    task = await store.tasks.get(tid)
    assert task.review_rounds == 1  # the same round again, not a second one
    [record] = await store.reviews.rounds(tid)
    assert [i["body"] for i in record["items"]] == ["Rename total"]
    assert branch_log(remotes, f"hookagent/{tid}")[0] == "hookagent: address review (round 1)"
    assert branch_log(remotes, f"hookagent/{tid}")[1] != "hookagent: address review (round 1)"
    assert [r["comment_id"] for r in github.replies] == [961]


async def test_a_rejected_push_fails_the_round_with_its_reason(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, remotes: Path, tmp_path: Path,
) -> None:  # fmt: skip
    slow = fake_agent("auto", "ticks", "6", "0.3")
    tid, number = await opened(http, store, start_worker, own, agent_command=slow)
    branch = f"hookagent/{tid}"
    human = tmp_path / "human"
    git("clone", "-q", "--branch", branch, str(remotes / f"{REPO}.git"), str(human), cwd=tmp_path)
    event = github.review_comment_event(number, 901, body="Rename total")
    assert (await deliver(http, "pull_request_review_comment", event, "p-1")).status_code == 202
    await wait_count(store, tid, "[stdout] tick 0", 2)  # the execution ticked too
    # While the agent works, a person pushes: hookagent's push is no fast-forward now.
    (human / "NOTES.md").write_text("pushed meanwhile\n")
    git("add", "NOTES.md", cwd=human)
    git("commit", "-q", "-m", "kim: meanwhile", cwd=human)
    git("push", "-q", "origin", branch, cwd=human)
    await wait_for_line(store, tid, "status completed: review round 1 failed: push of")
    task = await store.tasks.get(tid)
    assert task.status is TaskStatus.COMPLETED and task.error and "rejected" in task.error
    [record] = await store.reviews.rounds(tid)  # as GET /tasks/{id} shows it
    assert (record["error"], record["commit"], record["test"]) == (task.error, None, None)
    assert record["outcome"] == f"failed: {task.error}" and record["finished_at"].endswith("Z")
    # Never forced: the person's commit is still the branch's head.
    assert branch_log(remotes, branch)[0] == "kim: meanwhile"
    assert github.replies == []


async def test_past_max_rounds_one_comment_and_nothing_runs(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, remotes: Path,
) -> None:  # fmt: skip
    tid, number = await opened(http, store, start_worker, own)
    for n in (1, 2):  # max_rounds = 2 in the policy
        event = github.review_comment_event(number, 1000 + n, body=f"Round {n} please")
        answer = await deliver(http, "pull_request_review_comment", event, f"m-{n}")
        assert answer.status_code == 202
        await round_done(store, tid, n)
    branch = branch_log(remotes, f"hookagent/{tid}")
    for n in (3, 4):
        event = github.review_comment_event(number, 1000 + n, body="One more")
        answer = await deliver(http, "pull_request_review_comment", event, f"m-{n}")
        assert answer.status_code == 202
        await wait_count(store, tid, "max_rounds reached: 2 review rounds ran", n - 2)
        assert await store.reviews.pending(tid) == []
    said = [c for c in github.comments.values() if "most its policy allows" in c]
    assert len(said) == 1
    task = await store.tasks.get(tid)
    assert task.review_rounds == 2 and task.status is TaskStatus.COMPLETED
    assert branch_log(remotes, f"hookagent/{tid}") == branch


async def test_a_gitlab_diff_note_makes_a_round_answered_in_its_discussion(
    own: Settings, redis: Redis, store: Store, start_worker: RunWorker, tmp_path: Path,
) -> None:  # fmt: skip
    project = "acme/platform/payments-api"
    bare = make_remote(tmp_path / "gitlab", project)
    with GitLabStub() as gitlab:
        overrides: dict[str, Any] = {
            "gitlab_api_url": gitlab.api_url,
            "gitlab_token": SecretStr(GitLabStub.TOKEN),
            "gitlab_webhook_secret": SecretStr(GITLAB_SECRET),
            "gitlab_approvers": "lee-lead",
            "gitlab_url_template": f"file://{tmp_path / 'gitlab'}/{{repo}}.git",
        }
        mine = own.model_copy(update=overrides)
        start_worker(**mine.model_dump())
        async with app_client(mine, redis) as http:
            new = NewTask(source="gitlab", forge="gitlab", repository=project, title="Guard",
                          prompt="p", external_id=f"{project}#57")  # fmt: skip
            tid = (await store.tasks.create(new)).task_id
            assert await wait_status(store, tid, {TaskStatus.PENDING_APPROVAL}) is not None
            assert (await http.post(f"/tasks/{tid}/approve")).status_code == 200
            assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
            iid = (await store.tasks.get(tid)).pr_number
            note: dict[str, Any] = json.loads((FIXTURES / "gitlab-note-approve.json").read_text())
            position = {"new_path": "app.py", "old_path": "app.py", "new_line": 2}
            note["object_attributes"] |= {
                "note": "Guard the empty list here", "noteable_type": "MergeRequest",
                "position": position, "id": 1913777,
            }  # fmt: skip
            note["merge_request"] = {"iid": iid, "id": 88300}
            headers = JSON | {"x-gitlab-event": "Note Hook", "x-gitlab-event-uuid": "n-1",
                              "x-gitlab-token": GITLAB_SECRET}  # fmt: skip
            kept = await http.post("/webhooks/gitlab", content=json.dumps(note), headers=headers)
            assert kept.status_code == 202, kept.text
            await round_done(store, tid, 1)
        [reply] = gitlab.mr_notes
        assert reply["discussion_id"] == note["object_attributes"]["discussion_id"]
        assert reply["noteable_iid"] == iid and "Addressed in" in reply["body"]
    subjects = git("log", "--format=%s", f"hookagent/{tid}", cwd=bare).splitlines()
    assert subjects[0] == "hookagent: address review (round 1)"
