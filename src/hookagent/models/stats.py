"""Change-request statistics per repository, source and agent (``GET /stats``)."""

from __future__ import annotations

from pydantic import BaseModel


class ChangeStats(BaseModel):
    """The change requests of one repository, source and agent (all of them when null)."""

    repository: str | None = None
    source: str | None = None
    agent: str | None = None
    opened: int = 0
    merged: int = 0
    closed_unmerged: int = 0
    # Merged among the requests that ended (merged or closed); null while none ended.
    merge_rate: float | None = None
    median_time_to_merge_s: float | None = None
    rounds_per_pr: float | None = None
    ci_fixes_per_pr: float | None = None


class StatsResponse(BaseModel):
    """``GET /stats``: change requests per repository, source and agent, and in total."""

    total: ChangeStats
    groups: list[ChangeStats]
