"""A task with two finished review rounds and feedback waiting, written as the worker does.

The items are made by the real parsers' shapes (sources/feedback.py, sources/ci.py) and the
records by worker/rounds.py's ``round_record``, through the store's own steps (add, take,
close, next round), so what the API, the task page and the CLI show is what a round keeps.
"""

from __future__ import annotations

import time

from hookagent.models import CheckResult, TaskStatus
from hookagent.sources.ci import ChecksFailed
from hookagent.sources.feedback import Feedback, Kind
from hookagent.store import Store
from hookagent.worker.checks import TestReport
from hookagent.worker.rounds import Pushed, round_record
from tests.helpers import move_to

PUSHED = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
FAILED_SHA = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
REJECTED = "push of hookagent/x rejected: ! [rejected] (fetch first)"
PENDING_BODY = "please also add a docstring"


def feedback(
    number: int, kind: Kind, author: str, body: str, path: str | None = None, line: int = 0
) -> Feedback:
    """A comment as the GitHub parser makes it."""
    return Feedback(
        source="github", ref="acme/payments-api!41", kind=kind, body=body, actor=author,
        actor_names=(author,), feedback_id=f"review-comment:{number}", reply_to=str(number),
        path=path, line=line or None,
    )  # fmt: skip


async def seed_rounds(store: Store, task_id: str, *, inline_body: str) -> None:
    """Round 1 (two comments, pushed, test passed), round 2 (a CI fix that failed), one waits."""
    fields = {"pr_number": "41", "pr_url": "https://github.com/acme/payments-api/pull/41"}
    await move_to(store, task_id, TaskStatus.COMPLETED, fields=fields | {"branch": "hookagent/x"})
    reviews, now = store.reviews, int(time.time() * 1000)
    first = [
        feedback(1, Kind.INLINE, "rev-alice", inline_body, path="src/cart.py", line=12),
        feedback(2, Kind.REVIEW, "rev-bob", "Handle the empty cart too"),
    ]
    for item in first:
        await reviews.add(task_id, item.item(), feedback_id=item.feedback_id, now_ms=now)
    taken = await reviews.take(task_id)
    pushed = Pushed(PUSHED, TestReport(CheckResult.PASSED))
    await reviews.close(task_id, round_record(taken, pushed.describe(), pushed, error=None))
    await reviews.next_round(task_id)

    failed = ChecksFailed(
        source="github", repository="acme/payments-api", branch="hookagent/x", sha=FAILED_SHA,
        check="tests", event_id=f"{FAILED_SHA}:7", number=41,
    )  # fmt: skip
    read = failed.item() | {"body": "Check: tests\nFAILED test_total", "ready": True}
    await reviews.add(task_id, read, feedback_id=failed.event_id, now_ms=now)
    taken = await reviews.take(task_id)
    await reviews.close(task_id, round_record(taken, f"failed: {REJECTED}", None, error=REJECTED))
    await reviews.next_round(task_id)

    waiting = feedback(3, Kind.COMMENT, "rev-alice", PENDING_BODY)
    await reviews.add(task_id, waiting.item(), feedback_id=waiting.feedback_id, now_ms=now)
