"""``GET /stats``: what became of the change requests tasks opened, grouped and in total."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from hookagent.models import ChangeStats, StatsResponse, TaskStatus, seconds_between
from hookagent.store import ChangeRecord, Store


async def change_stats(store: Store) -> StatsResponse:
    """Per repository, source and agent: opened, merged, closed unmerged, rates and rounds."""
    records = await store.changes.all()
    groups: dict[tuple[str, str, str], list[ChangeRecord]] = {}
    for record in records:
        groups.setdefault((record.repository, record.source, record.agent), []).append(record)
    rows = [
        summarize(members, repository=repo, source=source, agent=agent)
        for (repo, source, agent), members in sorted(groups.items())
    ]
    return StatsResponse(total=summarize(records), groups=rows)


def summarize(
    records: Iterable[ChangeRecord],
    *,
    repository: str | None = None,
    source: str | None = None,
    agent: str | None = None,
) -> ChangeStats:
    """The numbers of one group of change requests."""
    rows = list(records)
    merged = [r for r in rows if r.status is TaskStatus.MERGED]
    closed = sum(1 for r in rows if r.status is TaskStatus.CLOSED)
    times = [t for r in merged if (t := seconds_between(r.opened_at, r.ended_at)) is not None]
    ended = len(merged) + closed
    return ChangeStats(
        repository=repository,
        source=source,
        agent=agent,
        opened=len(rows),
        merged=len(merged),
        closed_unmerged=closed,
        merge_rate=len(merged) / ended if ended else None,
        median_time_to_merge_s=statistics.median(times) if times else None,
        rounds_per_pr=sum(r.review_rounds for r in rows) / len(rows) if rows else None,
        ci_fixes_per_pr=sum(r.ci_fixes for r in rows) / len(rows) if rows else None,
    )
