"""``/tasks``: list, details, status and paginated logs, in the seed's shapes."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from hookagent.api.deps import (
    FeedsDep,
    FilterDep,
    OffsetQuery,
    PoliciesDep,
    RedactorDep,
    StoreDep,
)
from hookagent.api.errors import encode_json
from hookagent.api.logfilter import collect
from hookagent.errors import PayloadError
from hookagent.models import (
    PHASE_QUEUES,
    CheckResult,
    LogEntry,
    LogsPage,
    ReviewRound,
    RoundItem,
    StatusMetadata,
    TaskDetail,
    TaskList,
    TaskRounds,
    TaskStatus,
    TaskStatusResponse,
    TaskSummary,
    block_text,
    one_line,
)
from hookagent.redact import Redactor
from hookagent.store import RoundsState, Store

router = APIRouter(prefix="/tasks", tags=["tasks"])

MAX_PAGE = 10_000
# What a task's rounds show of reviewers' text: enough to know the comment, not a copy of it.
SHOWN_ITEMS = 20
SHOWN_BODY_CHARS = 1_000
SHOWN_CHARS = 300


@router.get("/")
@router.get("", include_in_schema=False)
async def list_tasks(
    store: StoreDep,
    status: TaskStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> TaskList:
    """Newest first, optionally only one status."""
    tasks = await store.tasks.list(status=status, limit=limit)
    rows = [TaskSummary.model_validate(t.model_dump()) for t in tasks]
    return TaskList(tasks=rows, count=len(rows))


@router.get("/{task_id}")
async def get_task(
    task_id: str, store: StoreDep, policies: PoliciesDep, redactor: RedactorDep
) -> TaskDetail:
    """Everything about the task, with its status history and review rounds."""
    task = await store.tasks.get(task_id)
    history = await store.tasks.history(task_id)
    plans = await store.tasks.plans(task_id)
    total = await store.logs.total(task_id)
    rounds = shown_rounds(
        await store.reviews.overview(task_id),
        ran=task.review_rounds,
        max_rounds=policies.effective(task.repository).max_rounds,
        redactor=redactor,
    )
    return TaskDetail(
        **task.model_dump(), history=history, plans=plans, log_total=total, rounds=rounds
    )


def shown_rounds(
    state: RoundsState, *, ran: int, max_rounds: int, redactor: Redactor
) -> TaskRounds:
    """The rounds as the task shows them: reviewers' text redacted, escaped and capped.

    Comments are kept as their authors wrote them (the agent reads them whole); a person may
    paste a token into one, so they are redacted here as the log's lines are.
    """
    return TaskRounds(
        ran=ran,
        max_rounds=max_rounds,
        finished=[_round(record, redactor) for record in state.finished],
        running=[_item(item, redactor) for item in state.running[:SHOWN_ITEMS]],
        running_count=len(state.running),
        pending=[_item(item, redactor) for item in state.pending[:SHOWN_ITEMS]],
        pending_count=len(state.pending),
    )


def _round(record: dict[str, Any], redactor: Redactor) -> ReviewRound:
    """A finished round's record (worker/rounds.py ``round_record``) as shown."""
    items: list[dict[str, Any]] = record.get("items") or []
    ci = bool(items) and all(item.get("kind") == "ci" for item in items)
    test = record.get("test")
    return ReviewRound(
        number=int(record.get("number") or 0),
        kind="ci" if ci else "review",
        item_count=len(items),
        items=[_item(item, redactor) for item in items[:SHOWN_ITEMS]],
        outcome=_short(record.get("outcome")) or "",
        finished_at=_short(record.get("finished_at")),
        commit=_short(record.get("commit")),
        test=CheckResult(test) if test in set(CheckResult) else None,
        error=_short(record.get("error")),
    )


def _item(item: dict[str, Any], redactor: Redactor) -> RoundItem:
    """A feedback item as shown; a failing checks' item not read yet names its commit."""
    kind = str(item.get("kind") or "comment")
    raw = str(item.get("body") or "")
    if not raw and kind == "ci":
        raw = f"checks failed on {str(item.get('sha') or '?')[:12]}"
    body, cut = block_text(redactor.redact(raw), SHOWN_BODY_CHARS)
    line = item.get("line")
    return RoundItem(
        kind=one_line(kind, 20),
        author=_short(item.get("author")),
        path=_short(item.get("path")),
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        body=body,
        truncated=cut,
    )


def _short(value: Any) -> str | None:
    """A short field (author, path, outcome) on one line, capped; None stays None."""
    return one_line(str(value), SHOWN_CHARS) if value not in (None, "") else None


@router.get("/{task_id}/progress")
async def get_progress(task_id: str, store: StoreDep) -> dict[str, Any]:
    """The latest attempt's progress: phase, turns, tool calls, files, todos, tokens, cost."""
    task = await store.tasks.get(task_id)
    progress = await store.tasks.progress(task_id)
    return {"task_id": task_id, "status": task.status, "progress": progress}


@router.get("/{task_id}/status")
async def get_status(task_id: str, store: StoreDep) -> TaskStatusResponse:
    """The status and the seed's ``metadata`` object (with the latest progress)."""
    task = await store.tasks.get(task_id)
    metadata = StatusMetadata(
        status=task.status,
        updated_at=task.updated_at,
        plan=task.plan,
        queue=PHASE_QUEUES[task.phase],
        attempt=task.attempt,
        error=task.error,
        progress=await store.tasks.progress(task_id),
    )
    return TaskStatusResponse(task_id=task.task_id, status=task.status, metadata=metadata)


@router.get("/{task_id}/logs", response_model=LogsPage)
async def get_logs(
    task_id: str,
    store: StoreDep,
    feeds: FeedsDep,
    flt: FilterDep,
    offset: OffsetQuery = 0,
    limit: Annotated[int, Query(ge=-1, le=MAX_PAGE, description="-1 for all")] = 100,
    follow: Annotated[bool, Query(description="long-poll: wait for entries at offset")] = False,
    wait: Annotated[float, Query(ge=0, le=60, description="seconds to wait (follow)")] = 25,
) -> LogsPage | Response:
    """Log entries from ``offset`` (each entry's ``seq`` is its offset), filtered.

    ``next_offset`` is where to continue; with ``follow=true`` the call waits up to ``wait``
    seconds when nothing (matching) is there yet.
    """
    if limit == 0:
        raise PayloadError("limit must be -1 (all) or between 1 and 10000")
    if not follow and flt.empty:
        answer = await logs_page(store, task_id, offset, limit)
        return Response(encode_json(answer), media_type="application/json")
    if not follow:
        entries, total = await store.logs.read(task_id, offset=offset, limit=limit)
        if not flt.empty:

            async def page(seq: int, count: int) -> list[LogEntry]:
                return (await store.logs.read(task_id, offset=seq, limit=count))[0]

            entries, cursor = await collect(page, flt, offset=offset, limit=limit)
        else:
            cursor = offset + len(entries)
        return _page(task_id, entries, offset, limit, total, cursor)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    async with feeds.follow(task_id) as feed:

        async def recent(seq: int, count: int) -> list[LogEntry]:
            return await feeds.read(feed, seq, count)

        cursor = offset
        while True:
            entries, cursor = await collect(recent, flt, offset=cursor, limit=limit)
            remaining = deadline - loop.time()
            if entries or remaining <= 0 or feed.terminal:
                break
            await feed.wait_beyond(cursor, remaining)
        return _page(task_id, entries, offset, limit, feed.next_seq, cursor)


async def logs_page(store: Store, task_id: str, offset: int, limit: int) -> dict[str, Any]:
    """The common page (no filter, no follow), as read: no model per entry (a ``LogsPage``)."""
    rows, total = await store.logs.read_rows(task_id, offset=offset, limit=limit)
    cursor = offset + len(rows)
    return {
        "task_id": task_id,
        "logs": rows,
        "offset": offset,
        "limit": limit,
        "total": total,
        "has_more": cursor < total,
        "next_offset": cursor,
    }


def _page(
    task_id: str, entries: list[LogEntry], offset: int, limit: int, total: int, cursor: int
) -> LogsPage:
    return LogsPage(
        task_id=task_id,
        logs=entries,
        offset=offset,
        limit=limit,
        total=total,
        has_more=cursor < total,
        next_offset=cursor,
    )
