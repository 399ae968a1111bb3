"""Slack interactivity: Approve / Reject / Revise buttons and the revise modal.

The signature is checked on the raw body before anything is parsed. The decision is one
Redis step through services/lifecycle.py and the answer is an empty 200 at once (Slack
wants one within 3 s); the messages change through the outbox, like every other change.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from hookagent.api.deps import RedactorDep, SettingsDep, StoreDep, get_policies
from hookagent.api.errors import OK
from hookagent.errors import ConflictError, NotAnApprover
from hookagent.models import Action, one_line
from hookagent.notify.slack import open_revise_modal
from hookagent.services.lifecycle import Lifecycle
from hookagent.sources import (
    Ignored,
    SlackInteraction,
    Verb,
    parse_slack_interaction,
    verify_slack_signature,
)

router = APIRouter(prefix="/webhooks/slack", tags=["webhooks"])


@router.post(
    "/interactions",
    responses={
        200: {"description": "Done (empty body), ignored, or a click seen before"},
        401: {"description": "Bad or missing signature, or a timestamp over 5 minutes old"},
        403: {"description": "The Slack user is not in HOOKAGENT_SLACK_APPROVERS"},
        404: {"description": "No such task"},
        409: {"description": "The task's status does not allow it"},
    },
)
async def slack_interactions(
    request: Request, store: StoreDep, settings: SettingsDep, redactor: RedactorDep
) -> Response:
    """A click on a task's buttons, or the revise modal's submission (form field ``payload``)."""
    body = await request.body()
    secret = settings.slack_signing_secret
    verify_slack_signature(
        body,
        secret.get_secret_value() if secret else None,
        request.headers.get("x-slack-request-timestamp"),
        request.headers.get("x-slack-signature"),
        now=time.time(),
    )
    try:
        interaction = parse_slack_interaction(body)
    except Ignored as ignored:
        return JSONResponse({"status": "ignored", "reason": ignored.reason})
    life = Lifecycle(store, settings, redactor=redactor, policies=get_policies(request))
    actor = f"{interaction.user_name} (slack {interaction.user_id})"
    where = f"{interaction.verb.value} from slack by {one_line(actor, 200)}"
    if interaction.user_id.lower() not in settings.approvers("slack"):
        await life.say(interaction.task_id, f"{where} refused: not in HOOKAGENT_SLACK_APPROVERS")
        raise NotAnApprover(f"{one_line(actor, 200)} may not {interaction.verb} tasks")
    # Slack's id of the click: a signed request replayed within its 5 minutes is the same one.
    seen = await store.refs.claim_command(
        "slack", delivery=None, event_id=interaction.event_id, verb=interaction.verb
    )
    if seen is not None:
        return JSONResponse({"status": "duplicate", "detail": seen})
    try:
        await _decide(interaction, life, store, settings, redactor, actor)
    except ConflictError as exc:
        await life.refused(interaction.task_id, where, exc)
        raise
    except BaseException:
        # Not decided (Redis gone, Slack's API down): the person may click again.
        await store.refs.forget_command("slack", delivery=None, event_id=interaction.event_id)
        raise
    return Response(status_code=OK)  # empty: Slack closes a submitted modal


async def _decide(
    interaction: SlackInteraction,
    life: Lifecycle,
    store: StoreDep,
    settings: SettingsDep,
    redactor: RedactorDep,
    actor: str,
) -> None:
    task_id = interaction.task_id
    if interaction.verb is Verb.APPROVE:
        await life.approve(task_id, actor=actor, voter=interaction.voter)
    elif interaction.verb is Verb.REJECT:
        await life.reject(task_id, actor=actor)
    elif interaction.trigger_id is not None:
        # The Revise button: ask for the feedback; its submission comes back here.
        task = await store.tasks.get_for(task_id, Action.REVISE)
        await open_revise_modal(settings, redactor, trigger_id=interaction.trigger_id, task=task)
    else:
        await life.revise(task_id, actor=actor, feedback=interaction.feedback or "")
