"""The agent as reviewer with the real Claude Code CLI: read-only, one review posted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.store import Store
from tests.anthropic_stub import MessagesStub, Turn
from tests.conftest import RunWorker
from tests.e2e.test_claude_code import claude_bin, use_stub
from tests.github_stub import GitHubStub
from tests.helpers import wait_status
from tests.worker.test_policies import messages
from tests.worker.test_review import (  # noqa: F401 - fixtures
    ENDED,
    comment_payload,
    deliver,
    forge,
    github,
    http,
    own,
    pull_sha,
    remote_refs,
)

pytestmark = pytest.mark.e2e

ANSWER = """\
SUMMARY:
median() sorts a copy and picks the middle; it fails on an empty list.

COMMENT app.py:5
`s[len(s) // 2]` raises IndexError when xs is empty.

COMMENT app.py:4
sorted() copies the list; fine here.
"""


async def test_review_with_the_real_cli_posts_one_review_and_changes_nothing(
    http: httpx.AsyncClient, store: Store, start_worker: RunWorker, github: GitHubStub,  # noqa: F811
    forge: dict[str, Any], remotes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:  # fmt: skip
    turns = [
        Turn(tool="Bash", tool_input={"command": "cat app.py", "description": "Read app.py"}),
        # Planning mode: the CLI must refuse the write, and nothing is pushed either way.
        Turn(tool="Write", tool_input={"file_path": "app.py", "content": "pwned\n"}),
        Turn(text=ANSWER),
    ]
    before = remote_refs(remotes)
    with MessagesStub(turns) as stub:
        use_stub(monkeypatch, stub, tmp_path)
        start_worker(**forge | {"agent": "claude", "claude_bin": claude_bin(),
                                "planning_timeout": 120})  # fmt: skip
        response = await deliver(http, comment_payload())
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        status = await wait_status(store, task_id, ENDED, timeout=120)
        lines = await messages(store, task_id)
        assert status is TaskStatus.COMPLETED, lines
    assert any("--permission-mode plan" in m for m in lines if m.startswith("[system] running"))
    assert any(m.startswith("[stdout] tool result: def total") for m in lines), lines
    [review] = github.reviews
    assert [(c["path"], c["line"]) for c in review["comments"]] == [("app.py", 5), ("app.py", 4)]
    assert "fails on an empty list" in review["body"]
    # The model saw the diff, fenced, in the prompt it was given on stdin.
    first = stub.requests[0]["body"]["messages"][0]["content"]
    text = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)
    assert "+def median(xs):" in text and "<untrusted_webhook_data>" in text
    assert remote_refs(remotes) == before
