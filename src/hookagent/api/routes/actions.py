"""``POST /tasks/{id}/approve|reject|revise|cancel|retry``: a person's decisions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from hookagent.api.auth import TokenTable, principal_of
from hookagent.api.deps import PoliciesDep, RedactorDep, SettingsDep, StoreDep
from hookagent.models import ActionRequest, ActionResult
from hookagent.services.lifecycle import Lifecycle

router = APIRouter(prefix="/tasks", tags=["lifecycle"])

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Not allowed from the task's current status"}
}


async def get_lifecycle(
    store: StoreDep, settings: SettingsDep, redactor: RedactorDep, policies: PoliciesDep
) -> Lifecycle:
    """The lifecycle service over the app's store."""
    return Lifecycle(store, settings, redactor=redactor, policies=policies)


LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]
ActionBody = Annotated[ActionRequest | None, Body()]


def _actor(request: Request) -> str:
    # The log names the token that decided; a body's "actor" is only a claim, so it is ignored.
    return principal_of(request).name


def _voter(request: Request) -> str:
    """``api:<token name>``: token names are unique, and a token cannot rename itself.

    Without tokens every caller is the one anonymous admin on loopback, whatever its address.
    """
    tokens: TokenTable = request.app.state.tokens
    return f"api:{principal_of(request).name}" if tokens else "api:anonymous"


@router.post("/{task_id}/approve", responses=_CONFLICT)
async def approve(
    task_id: str, request: Request, lifecycle: LifecycleDep, body: ActionBody = None
) -> ActionResult:
    """Approve the plan: the execution job is queued in the same step."""
    comment = body.comment if body else None
    return await lifecycle.approve(
        task_id, actor=_actor(request), voter=_voter(request), comment=comment
    )


@router.post("/{task_id}/reject", responses=_CONFLICT)
async def reject(
    task_id: str, request: Request, lifecycle: LifecycleDep, body: ActionBody = None
) -> ActionResult:
    """Reject the plan; the task ends ``rejected``."""
    reason = body.reason if body else None
    return await lifecycle.reject(task_id, actor=_actor(request), reason=reason)


@router.post("/{task_id}/revise", responses=_CONFLICT)
async def revise(
    task_id: str, request: Request, lifecycle: LifecycleDep, body: ActionBody = None
) -> ActionResult:
    """Plan again with ``feedback``; the earlier plan is kept."""
    feedback = (body.feedback or body.comment or "") if body else ""
    return await lifecycle.revise(task_id, actor=_actor(request), feedback=feedback)


@router.post("/{task_id}/cancel", responses=_CONFLICT)
async def cancel(
    task_id: str, request: Request, lifecycle: LifecycleDep, body: ActionBody = None
) -> ActionResult:
    """Stop the task wherever it is; a running agent is killed."""
    reason = body.reason if body else None
    return await lifecycle.cancel(task_id, actor=_actor(request), reason=reason)


@router.post("/{task_id}/retry", responses=_CONFLICT)
async def retry(
    task_id: str, request: Request, lifecycle: LifecycleDep, body: ActionBody = None
) -> ActionResult:
    """Start a new attempt of a failed or cancelled task from the phase it stopped in."""
    return await lifecycle.retry(task_id, actor=_actor(request))
