"""Slack app mode: one parent message per task, edited in place, details in its thread."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from hookagent.errors import OutboundError
from hookagent.models import Task, TaskStatus
from hookagent.notify.base import Delivery, http_failure, redact_tree
from hookagent.notify.render import last_lines
from hookagent.notify.slack_blocks import (
    outcome_message,
    parent_message,
    plan_message,
    revise_modal,
    snippet_message,
)
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import OutboxEvent, Store

SNIPPET_LINES = 15
# A notifier handles one event at a time: a slower answer is retried with backoff
# (HOOKAGENT_NOTIFY_MAX_ATTEMPTS) rather than holding up every task's next notification.
CALL_TIMEOUT_S = 10
MODAL_TIMEOUT_S = 2  # views.open must happen within 3 s of the click
ENDINGS = {
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
    TaskStatus.MERGED,
    TaskStatus.CLOSED,
}


def decision(event: OutboxEvent) -> bool:
    """Whether the event is a person's decision on a plan (approve, reject, revise, cancel)."""
    return event.previous == TaskStatus.PENDING_APPROVAL and bool(event.reason)


class SlackApp:
    """Posts through the Web API with a bot token (``chat.postMessage``, ``chat.update``)."""

    channel = "slack"

    def __init__(self, *, settings: Settings, store: Store, redactor: Redactor) -> None:
        self._settings = settings
        self._store = store
        self._redactor = redactor
        self._client = web_client(settings, CALL_TIMEOUT_S)

    def wants(self, event: OutboxEvent, task: Task) -> bool:
        """Every event moves the parent message."""
        return True

    async def deliver(self, delivery: Delivery) -> None:
        """Post or edit the parent message, then whatever the event adds to the thread."""
        event, task = delivery.event, delivery.task
        if decision(event):
            await delivery.remember(decided=event.reason)
        decided = delivery.state.get("decided")
        text, blocks = parent_message(task, self._settings, decided)
        if "ts" not in delivery.state:
            reply = await self._call(
                "chat_postMessage", channel=self._settings.slack_channel, text=text, blocks=blocks
            )
            await delivery.remember(ts=str(reply["ts"]), channel=str(reply["channel"]))
        else:
            await self._call(
                "chat_update",
                channel=delivery.state["channel"],
                ts=delivery.state["ts"],
                text=text,
                blocks=blocks,
            )
        status = event.status
        if status is TaskStatus.PENDING_APPROVAL:
            text, blocks = plan_message(task, self._settings, None)
            ts = await self._in_thread(delivery, text, blocks)
            await delivery.remember(plan_ts=ts)
        elif decision(event) and "plan_ts" in delivery.state:
            text, blocks = plan_message(task, self._settings, decided)
            await self._call(
                "chat_update",
                channel=delivery.state["channel"],
                ts=delivery.state["plan_ts"],
                text=text,
                blocks=blocks,
            )
        if status in ENDINGS:
            lines = await last_lines(self._store, task.task_id)
            outcome = outcome_message(task, status, lines)
            if outcome is not None:
                await self._in_thread(delivery, *outcome)

    async def snippet(self, task: Task, state: dict[str, str], lines: list[str]) -> None:
        """Post new log lines of a running task in its thread."""
        text, blocks = snippet_message(lines[-SNIPPET_LINES:])
        await self._call(
            "chat_postMessage",
            channel=state["channel"],
            thread_ts=state["ts"],
            text=text,
            blocks=blocks,
        )

    async def _in_thread(self, delivery: Delivery, text: str, blocks: list[Any]) -> str:
        """Reply in the thread once per event: a redelivered event finds its mark and skips."""
        mark = f"posted:{delivery.event.event_id}"
        if mark in delivery.state:
            return delivery.state[mark]
        reply = await self._call(
            "chat_postMessage",
            channel=delivery.state["channel"],
            thread_ts=delivery.state["ts"],
            text=text,
            blocks=blocks,
        )
        ts = str(reply["ts"])
        await delivery.remember(**{mark: ts})
        return ts

    async def _call(self, method: str, **arguments: Any) -> dict[str, Any]:
        arguments = redact_tree(arguments, self._redactor)
        return await call(self._client, method, **arguments)

    async def aclose(self) -> None:
        """Nothing to close: the client opens a session per call."""


def web_client(settings: Settings, timeout: int) -> AsyncWebClient:
    """A Web API client for the configured token and API URL; retries are the notifier's."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(
        token=token, base_url=settings.slack_api_url, timeout=timeout, retry_handlers=[]
    )


async def call(client: AsyncWebClient, method: str, **arguments: Any) -> dict[str, Any]:
    """``client.<method>(**arguments)``'s data; :class:`OutboundError` on any failure."""
    try:
        response = await getattr(client, method)(**arguments)
    except SlackApiError as exc:
        answer = exc.response
        data = answer.data if isinstance(answer.data, dict) else {}
        detail = str(data.get("error") or answer.data)
        status = int(answer.status_code)
        if status == 200:  # ok: false, e.g. channel_not_found: retrying will not help
            raise OutboundError(f"Slack {method} refused: {detail}") from None
        raise http_failure(f"Slack {method}", status, dict(answer.headers), detail) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OutboundError(f"Slack unreachable: {exc!r}", retryable=True) from None
    return dict(response.data) if isinstance(response.data, dict) else {}


async def open_revise_modal(
    settings: Settings, redactor: Redactor, *, trigger_id: str, task: Task
) -> None:
    """``views.open`` with the revise modal, for the click that carried ``trigger_id``."""
    view = redact_tree(revise_modal(task), redactor)
    await call(
        web_client(settings, MODAL_TIMEOUT_S), "views_open", trigger_id=trigger_id, view=view
    )
