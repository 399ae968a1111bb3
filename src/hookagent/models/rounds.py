"""A task's review rounds as shown: each round's feedback items, outcome and what waits."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from hookagent.models.task import CheckResult


class RoundItem(BaseModel):
    """A review round's feedback item as shown: a stranger's text, capped, never markup."""

    kind: str  # review, inline, comment (sources/feedback.py) or ci (sources/ci.py)
    author: str | None = None  # the comment's author; for ci, the failed check's name
    path: str | None = None
    line: int | None = None
    body: str = ""
    truncated: bool = False  # the body is longer than shown (the round had all of it)


class ReviewRound(BaseModel):
    """A finished review round: what it addressed and how it ended."""

    number: int
    kind: Literal["review", "ci"]  # ci: every item was a failing checks' report
    item_count: int
    items: list[RoundItem]  # the first ones, when there were many
    outcome: str  # as the log and the status comment say it
    finished_at: str | None = None  # none for rounds kept before it was recorded
    commit: str | None = None  # the commit it pushed
    test: CheckResult | None = None  # the policy's test after the agent, when configured
    error: str | None = None  # why it failed (redacted)


class TaskRounds(BaseModel):
    """A task's review rounds: how many ran of ``max_rounds``, each one, what waits."""

    ran: int = 0
    max_rounds: int = 0
    finished: list[ReviewRound] = Field(default_factory=list)
    running: list[RoundItem] = Field(default_factory=list)  # the round now running
    running_count: int = 0
    pending: list[RoundItem] = Field(default_factory=list)  # for the next round
    pending_count: int = 0
