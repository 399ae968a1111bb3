"""The web UI: HTML shells and their assets from ``hookagent/ui/``, plus ``/ui/meta``.

The pages are static files; every piece of data comes from the JSON API, through
``ui/js/api.js``. Pages carry a strict Content-Security-Policy: no inline script or style,
nothing loaded from another origin. The board's own endpoints live in ``routes/board.py``,
which ``app.py`` includes before ``routes/tasks.py`` (``/tasks/events`` is not a task id).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from hookagent.api.errors import NOT_FOUND
from hookagent.models import TERMINAL_STATUSES, TRANSITIONS, Action, TaskStatus

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
}
# What a person may do in the UI, as rows of the one transition table (models.TRANSITIONS).
USER_ACTIONS: dict[str, tuple[Action, ...]] = {
    "approve": (Action.APPROVE,),
    "reject": (Action.REJECT,),
    "revise": (Action.REVISE,),
    "cancel": (Action.CANCEL,),
    "retry": (Action.RETRY_PLAN, Action.RETRY_EXECUTE),
}

router = APIRouter(tags=["ui"])


class UiMeta(BaseModel):
    """What the UI needs to know about the lifecycle: statuses and when each action applies."""

    statuses: list[TaskStatus]
    terminal: list[TaskStatus]
    actions: dict[str, list[TaskStatus]]


def _root() -> Path:
    return Path(str(resources.files("hookagent") / "ui"))


@functools.cache
def _assets() -> dict[str, Path]:
    """Every servable file under ``ui/`` by its relative name; nothing else is served."""
    root = _root()
    return {
        path.relative_to(root).as_posix(): path
        for path in root.rglob("*")
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


def _page(name: str) -> Response:
    body = (_root() / name).read_bytes()
    return Response(body, media_type=MEDIA_TYPES[".html"], headers=SECURITY_HEADERS)


@router.get("/", include_in_schema=False)
async def board_page() -> Response:
    """The task board."""
    return _page("board.html")


@router.get("/ui/tasks/{task_id}", include_in_schema=False)
async def task_page(task_id: str) -> Response:
    """One task: status, timeline, progress, plan, actions and the live log."""
    return _page("task.html")


@router.get("/ui/queue", include_in_schema=False)
async def queue_page() -> Response:
    """Jobs waiting, runs in progress and the workers running them."""
    return _page("queue.html")


@router.get("/ui/static/{name:path}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    """A file of the UI (scripts, styles, icons), with the same security headers."""
    path = _assets().get(name)
    if path is None:
        raise HTTPException(NOT_FOUND, f"no UI file {name!r}")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


@router.get("/ui/meta")
async def ui_meta() -> UiMeta:
    """Statuses, the final ones, and from which statuses each action is allowed."""
    actions = {
        name: sorted({s for action in rows for s in TRANSITIONS[action].allowed})
        for name, rows in USER_ACTIONS.items()
    }
    return UiMeta(statuses=list(TaskStatus), terminal=sorted(TERMINAL_STATUSES), actions=actions)
