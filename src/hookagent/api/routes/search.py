"""``GET /search``: full-text search across every task's log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from hookagent.api.deps import StoreDep
from hookagent.errors import PayloadError
from hookagent.models import TaskStatus

router = APIRouter(tags=["search"])


class SearchHit(BaseModel):
    """A matching log entry; ``snippet`` is HTML-escaped with matches in ``<mark>``."""

    task_id: str
    seq: int
    timestamp: str
    stream: str
    snippet: str


class SearchResults(BaseModel):
    """The first page of hits, newest tasks first."""

    query: str
    hits: list[SearchHit]
    count: int


@router.get("/search")
async def search(
    store: StoreDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description='words and "phrases"')],
    status: TaskStatus | None = None,
    since: Annotated[str | None, Query(description="ISO-8601 time; tasks created after")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SearchResults:
    """Entries containing every word and phrase of ``q`` (case-insensitive)."""
    since_ms = 0
    if since:
        try:
            since_ms = int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            raise PayloadError(f"since must be an ISO-8601 time, got {since!r}") from None
    hits = await store.search.search(q, status=status, since_ms=since_ms, limit=limit)
    rows = [SearchHit(**vars(hit)) for hit in hits]
    return SearchResults(query=q, hits=rows, count=len(rows))
