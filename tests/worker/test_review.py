"""The agent as reviewer, end to end: a request in, one review out, nothing ever pushed.

A pull request someone else opened lives in the bare remote (its branch and GitHub's
``refs/pull/7/head``); the GitHub stub describes it and records the review. The agent is
the fake ``review`` agent, which answers in the review format: a summary and comments on
two lines the diff shows and one it does not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.briefing.discussion import is_own_comment
from hookagent.briefing.review import Remark, ReviewAnswer
from hookagent.models import NewTask, TaskKind, TaskStatus
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.review import MAX_INLINE_COMMENTS, build_review, diff_lines
from tests.conftest import RunWorker
from tests.git_http import GitHttpServer
from tests.github_stub import GitHubStub
from tests.helpers import REPO, app_client, fake_agent, move_to, wait_status
from tests.worker.test_gitwall import SANDBOXES
from tests.worker.test_policies import messages, policy_file

SECRET = "gh-review-hook-s3cret"
API_TOKEN = "ghp_reviewtoken0123456789abcdefghijkl"
GIT_TOKEN = "git-review-push-token-9f8e7d"
NUMBER = 7
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
MEDIAN = "\n\ndef median(xs):\n    s = sorted(xs)\n    return s[len(s) // 2]\n"


def git(*args: str | Path, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "pat", "GIT_AUTHOR_EMAIL": "pat@example.com",
           "GIT_COMMITTER_NAME": "pat", "GIT_COMMITTER_EMAIL": "pat@example.com"}  # fmt: skip
    done = subprocess.run(
        ["git", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def remote_refs(remotes: Path) -> str:
    return git(
        "--git-dir", remotes / f"{REPO}.git", "for-each-ref", "--format=%(objectname) %(refname)"
    )


@pytest.fixture
def pull_sha(remotes: Path, tmp_path: Path) -> str:
    """Someone's pull request #7 in the remote: ``feature/median`` adding lines 3-6 of app.py."""
    bare = remotes / f"{REPO}.git"
    work = tmp_path / "contributor"
    git("clone", "-q", bare, work)
    with (work / "app.py").open("a") as source:
        source.write(MEDIAN)
    git("commit", "-qam", "Add a median", cwd=work)
    git("push", "-q", "origin", "HEAD:refs/heads/feature/median", f"HEAD:refs/pull/{NUMBER}/head",
        cwd=work)  # fmt: skip
    return git("rev-parse", "HEAD", cwd=work).strip()


@pytest.fixture
def github(pull_sha: str) -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        stub.add_pull(REPO, NUMBER, head="feature/median", sha=pull_sha, body="Adds median().")
        yield stub


@pytest.fixture
def forge(github: GitHubStub) -> dict[str, Any]:
    """What the API and the worker both need set: the stub, its token, the secret, the agent."""
    return {
        "github_api_url": github.url,
        "github_token": SecretStr(API_TOKEN),
        "github_webhook_secret": SecretStr(SECRET),
        "github_approvers": "lee-lead",
        "github_bot_login": "hookagent-bot",
        "agent_command": fake_agent("review"),
    }


@pytest.fixture
def own(settings: Settings, forge: dict[str, Any]) -> Settings:
    return settings.model_copy(update=forge)


@pytest.fixture
def start(start_worker: RunWorker, forge: dict[str, Any]) -> RunWorker:
    """Starts a worker with the forge settings (and ``overrides``)."""
    return lambda **overrides: start_worker(**(forge | overrides))


@pytest.fixture
async def http(own: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(own, redis) as client:
        yield client


def comment_payload(
    body: str = "@hookagent review mind empty lists",
    *,
    login: str = "lee-lead",
    comment: int = 555001,
) -> dict[str, Any]:
    """GitHub's ``issue_comment`` ``created`` on pull request #7."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "action": "created",
        "issue": {
            "number": NUMBER, "title": "Add a median",
            "html_url": f"https://github.com/{REPO}/pull/{NUMBER}",
            "pull_request": {"url": f"https://api.github.com/repos/{REPO}/pulls/{NUMBER}"},
        },
        "comment": {"id": comment, "body": body, "created_at": stamp,
                    "user": {"login": login, "id": 5821, "type": "User"}},
        "repository": {"full_name": REPO},
        "sender": {"login": login, "id": 5821, "type": "User"},
    }  # fmt: skip


def pull_payload(action: str, *, head: str, sha: str, by: str = "pat-dev") -> dict[str, Any]:
    """GitHub's ``pull_request`` delivery for #7."""
    user = {"login": by, "id": 7001, "type": "User"}
    return {
        "action": action,
        "number": NUMBER,
        "pull_request": {
            "id": 2_103_949_007, "number": NUMBER, "title": "Add a median", "state": "open",
            "html_url": f"https://github.com/{REPO}/pull/{NUMBER}", "user": user,
            "head": {"ref": head, "sha": sha}, "base": {"ref": "main"},
        },
        "repository": {"full_name": REPO},
        "sender": user,
    }  # fmt: skip


async def deliver(
    http: httpx.AsyncClient,
    payload: dict[str, Any],
    *,
    event: str = "issue_comment",
    delivery: str = "d-1",
    sign: bool = True,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json", "x-github-event": event,
               "x-github-delivery": delivery}  # fmt: skip
    if sign:
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers["x-hub-signature-256"] = f"sha256={digest}"
    return await http.post("/webhooks/github", content=body, headers=headers)


def bodies(review: dict[str, Any]) -> list[str]:
    return [comment["body"] for comment in review["comments"]]


async def reviewed(store: Store, github: GitHubStub, response: httpx.Response) -> str:
    """The task the delivery queued, run to its end: it must complete with one review."""
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    status = await wait_status(store, task_id, ENDED)
    assert status is TaskStatus.COMPLETED, await messages(store, task_id)
    assert len(github.reviews) == 1
    return task_id


async def test_review_comment_posts_one_review_with_inline_comments_and_pushes_nothing(
    http: httpx.AsyncClient, store: Store, start: RunWorker, github: GitHubStub,
    remotes: Path, pull_sha: str,
) -> None:  # fmt: skip
    before = remote_refs(remotes)
    start()
    task_id = await reviewed(store, github, await deliver(http, comment_payload()))

    review = github.reviews[0]
    assert review["event"] == "COMMENT"
    assert review["commit_id"] == pull_sha
    assert [(c["path"], c["line"], c["side"]) for c in review["comments"]] == [
        ("app.py", 3, "RIGHT"),
        ("app.py", 4, "RIGHT"),
    ]
    assert "IndexError" in review["comments"][0]["body"]
    # The line the diff does not show lands in the body, with the summary.
    assert "The median is right for odd lengths." in review["body"]
    assert "**app.py:40**" in review["body"] and "does not show" in review["body"]
    # hookagent's own: never a command or review feedback to itself.
    assert all(is_own_comment(text) for text in [review["body"], *bodies(review)])
    assert remote_refs(remotes) == before

    lines = await messages(store, task_id)
    assert any("saw the diff" in line for line in lines)
    assert any("fenced" == line.removeprefix("[stdout] ") for line in lines)
    assert any("review posted:" in line and "2 inline comments, 1 in the body" in line
               for line in lines)  # fmt: skip
    detail = (await http.get(f"/tasks/{task_id}")).json()
    assert detail["review_url"] == detail["result"] and "pullrequestreview" in detail["result"]
    assert detail["kind"] == TaskKind.REVIEW.value == "review"
    assert detail["reviewed_pr"] == NUMBER and detail["pr_number"] is None
    listed = (await http.get("/tasks/")).json()["tasks"]
    assert [(t["task_id"], t["kind"]) for t in listed] == [(task_id, "review")]
    # What the agent wrote in the prompt is not the review: the mention's text is fenced.
    assert "mind empty lists" in (await store.tasks.get(task_id)).prompt

    # The same comment again, under a new delivery id: nothing new.
    again = await deliver(http, comment_payload(), delivery="d-2")
    assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
    assert len((await http.get("/tasks/")).json()["tasks"]) == 1
    assert len(github.reviews) == 1


async def test_review_from_someone_not_allowed_does_nothing(
    http: httpx.AsyncClient, store: Store, github: GitHubStub
) -> None:
    response = await deliver(http, comment_payload(login="mallory"))
    assert response.status_code == 403, response.text
    assert "may not ask for reviews" in response.json()["detail"]
    assert (await http.get("/tasks/")).json()["tasks"] == []
    assert github.reviews == []


async def test_policy_reviewers_may_ask_too(
    own: Settings, redis: Redis, store: Store, start: RunWorker, github: GitHubStub,
    tmp_path: Path,
) -> None:  # fmt: skip
    policy = policy_file(tmp_path, 'reviewers = ["pat-dev"]\n')
    mine = own.model_copy(update={"policy_file": policy})
    start(policy_file=policy)
    async with app_client(mine, redis) as http:
        await reviewed(store, github, await deliver(http, comment_payload(login="pat-dev")))


async def test_an_unsigned_review_request_is_refused(
    http: httpx.AsyncClient, own: Settings, redis: Redis, github: GitHubStub
) -> None:
    response = await deliver(http, comment_payload(), sign=False)
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == "missing signature header"
    # Without a secret at all (allowed unsigned on loopback for new tasks): still refused.
    async with app_client(own.model_copy(update={"github_webhook_secret": None}), redis) as bare:
        response = await deliver(bare, comment_payload(), sign=False)
        assert response.status_code == 401, response.text
        assert "a review request needs a signed delivery" in response.json()["detail"]
        assert (await bare.get("/tasks/")).json()["tasks"] == []
    assert github.reviews == []


async def test_bots_and_hookagent_itself_never_ask(
    http: httpx.AsyncClient, github: GitHubStub
) -> None:
    bot = comment_payload()
    bot["comment"]["user"]["type"] = "Bot"
    for payload in (bot, comment_payload(login="hookagent-bot")):
        response = await deliver(http, payload)
        assert response.json()["status"] == "ignored", response.text
    assert (await http.get("/tasks/")).json()["tasks"] == []


@pytest.fixture
def reviewing(own: Settings, tmp_path: Path) -> Settings:
    """Settings whose policy reviews every pull request others open."""
    return own.model_copy(update={"policy_file": policy_file(tmp_path, "review_prs = true\n")})


async def test_review_prs_reviews_a_pull_request_someone_opens(
    reviewing: Settings, redis: Redis, store: Store, start: RunWorker,
    github: GitHubStub, pull_sha: str, remotes: Path,
) -> None:  # fmt: skip
    before = remote_refs(remotes)
    start(policy_file=reviewing.policy_file)
    async with app_client(reviewing, redis) as http:
        opened = pull_payload("opened", head="feature/median", sha=pull_sha)
        await reviewed(store, github, await deliver(http, opened, event="pull_request"))
        # The same head delivered again asks for nothing new.
        again = await deliver(http, opened, event="pull_request", delivery="d-9")
        assert again.json()["duplicate"] is True, again.text
    assert len(github.reviews) == 1 and len(github.reviews[0]["comments"]) == 2
    assert remote_refs(remotes) == before
    # Without a secret (loopback allows unsigned new tasks) a review is still refused.
    async with app_client(
        reviewing.model_copy(update={"github_webhook_secret": None}), redis
    ) as bare:
        pushed = pull_payload("synchronize", head="feature/median", sha="f" * 40)
        unsigned = await deliver(bare, pushed, event="pull_request", sign=False)
        assert unsigned.status_code == 401, unsigned.text
        assert "a review request needs a signed delivery" in unsigned.json()["detail"]


async def test_review_prs_is_off_by_default(
    http: httpx.AsyncClient, own: Settings, redis: Redis, github: GitHubStub, pull_sha: str
) -> None:
    opened = pull_payload("opened", head="feature/median", sha=pull_sha)
    ignored = {"status": "ignored", "reason": f"review_prs is off for {REPO}", "task_id": None}
    assert (await deliver(http, opened, event="pull_request")).json() == ignored
    # Unsigned from a source with no secret too: a request that asks for nothing is no error.
    async with app_client(own.model_copy(update={"github_webhook_secret": None}), redis) as bare:
        response = await deliver(bare, opened, event="pull_request", sign=False)
        assert response.json() == ignored


async def test_review_prs_never_reviews_hookagents_own_pull_requests(
    reviewing: Settings, redis: Redis, store: Store, github: GitHubStub, pull_sha: str
) -> None:
    async with app_client(reviewing, redis) as http:
        # Its branch, its login, or a request a task of it opened.
        by_branch = pull_payload("opened", head="hookagent/task-1764040000123-3f9a1c2b7d4e",
                                 sha=pull_sha)  # fmt: skip
        by_login = pull_payload("synchronize", head="fix", sha=pull_sha, by="hookagent-bot")
        for number, payload in enumerate((by_branch, by_login)):
            response = await deliver(http, payload, event="pull_request", delivery=f"o-{number}")
            assert response.json()["status"] == "ignored", response.text
            assert "own pull request" in response.json()["reason"]
        await store.refs.link("github", f"{REPO}!{NUMBER}", "task-1764040000123-3f9a1c2b7d4e")
        linked = pull_payload("synchronize", head="fix-2", sha=pull_sha)
        response = await deliver(http, linked, event="pull_request", delivery="o-9")
        assert "does not review its own" in response.json()["reason"], response.text
        assert (await http.get("/tasks/")).json()["tasks"] == []
    assert github.reviews == []


async def test_a_secret_the_agent_prints_is_redacted_in_the_review(
    own: Settings, redis: Redis, store: Store, start: RunWorker, github: GitHubStub
) -> None:
    shaped = "AKIA" + "Z7XQ4PLM2RTV8WNB"
    command = fake_agent("review", "leak", API_TOKEN, shaped)
    start(agent_command=command)
    async with app_client(own, redis) as http:
        await reviewed(store, github, await deliver(http, comment_payload()))
    posted = json.dumps(github.reviews[0])
    assert API_TOKEN not in posted and shaped not in posted
    assert "REDACTED" in github.reviews[0]["body"]
    assert "REDACTED" in github.reviews[0]["comments"][0]["body"]


async def test_a_rerun_after_the_review_was_posted_posts_nothing_again(
    http: httpx.AsyncClient, store: Store, start: RunWorker, github: GitHubStub
) -> None:
    new = NewTask(
        source="github", repository=REPO, title="Review pull request #7", prompt="p",
        kind=TaskKind.REVIEW, reviewed_pr=NUMBER, external_id=f"review:{REPO}!{NUMBER}",
    )  # fmt: skip
    task_id = (await store.tasks.create(new)).task_id
    # Posted, then the worker was lost before the status changed; the task failed over.
    url = f"https://github.com/{REPO}/pull/7#pullrequestreview-1"
    await move_to(store, task_id, TaskStatus.FAILED, fields={"review_url": url})
    start()
    assert (await http.post(f"/tasks/{task_id}/retry")).status_code == 200
    assert await wait_status(store, task_id, ENDED) is TaskStatus.COMPLETED
    assert f"[system] review already posted: {url}; not posted again" in await messages(
        store, task_id
    )
    assert github.reviews == [] and (await store.tasks.get(task_id)).result == url


@pytest.fixture
def git_server(remotes: Path) -> Iterator[GitHttpServer]:
    with GitHttpServer(remotes, user="x-access-token", token=GIT_TOKEN) as server:
        yield server


@pytest.mark.parametrize("sandbox", SANDBOXES)
async def test_an_agent_that_writes_and_pushes_gets_nothing_pushed(
    own: Settings, redis: Redis, store: Store, start: RunWorker, github: GitHubStub,
    git_server: GitHttpServer, remotes: Path, sandbox: str,
) -> None:  # fmt: skip
    served = {
        "git_url_template": f"{git_server.url}/{{repo}}.git",
        "git_token": SecretStr(GIT_TOKEN),
        "sandbox": sandbox,
        "agent_command": fake_agent("review", "attack"),
    }
    before = remote_refs(remotes)
    start(**served)
    async with app_client(own.model_copy(update=served), redis) as http:
        task_id = await reviewed(store, github, await deliver(http, comment_payload()))
    lines = await messages(store, task_id)
    pushes = [line for line in lines if "attack HEAD:refs/heads/" in line]
    assert len(pushes) == 2 and all("exit 0" not in line for line in pushes), lines
    assert remote_refs(remotes) == before
    assert git_server.authorized > 0  # hookagent fetched the request through it


DIFF = """\
diff --git a/app.py b/app.py
index 1..2 100644
--- a/app.py
+++ b/app.py
@@ -1,2 +1,6 @@
 def total(xs):
     return sum(xs) / len(xs)
+
+def median(xs):
-    old
+    return 1
\\ No newline at end of file
diff --git a/gone.py b/gone.py
--- a/gone.py
+++ /dev/null
@@ -1 +0,0 @@
-x
diff --git a/new.py b/new.py
--- /dev/null
+++ b/new.py
@@ -0,0 +1,2 @@
+a
+b
"""


def test_diff_lines_are_the_new_versions_added_and_context_lines() -> None:
    shown = diff_lines(DIFF)
    assert shown.lines == {"app.py": {1, 2, 3, 4, 5}, "new.py": {1, 2}}
    assert shown.old_paths == {"app.py": "app.py", "new.py": "new.py"}
    assert shown.shows("app.py", 5) and not shown.shows("app.py", 6)
    assert not shown.shows("gone.py", 1)


def test_comments_off_the_diff_and_past_the_cap_go_into_the_body() -> None:
    remarks = [Remark("new.py", 1, "fine"), Remark("new.py", 9, "off"), Remark("x.py", 1, "no")]
    answer = ReviewAnswer("sum", tuple(remarks))
    review = build_review(
        answer, diff_lines(DIFF), commit="c0ffee", redactor=Redactor([]), header="head"
    )
    assert [(c.path, c.line) for c in review.comments] == [("new.py", 1)]
    assert review.body.startswith("head\n\nsum\n\nComments on lines outside the diff")
    assert "**new.py:9**\n\noff" in review.body and "**x.py:1**\n\nno" in review.body
    many = ReviewAnswer("", tuple(Remark("app.py", 1, f"n{i}") for i in range(60)))
    capped = build_review(many, diff_lines(DIFF), commit="c", redactor=Redactor([]), header="h")
    assert len(capped.comments) == MAX_INLINE_COMMENTS and "n59" in capped.body
    assert "(no summary)" in capped.body
