"""Incoming-webhook mode: the same notifications as one message per event, for teams without
a Slack app (no buttons, nothing edited in place)."""

from __future__ import annotations

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from hookagent.errors import OutboundError
from hookagent.models import Task, TaskStatus
from hookagent.notify.base import Delivery, http_failure, redact_tree
from hookagent.notify.render import last_lines
from hookagent.notify.slack_blocks import event_message
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import OutboxEvent, Store

# A notifier handles one event at a time: a slower answer is retried with backoff
# (HOOKAGENT_NOTIFY_MAX_ATTEMPTS) rather than holding up every task's next notification.
TIMEOUT_S = 10


class SlackWebhook:
    """Posts one Block Kit message per lifecycle event to ``HOOKAGENT_SLACK_WEBHOOK_URL``."""

    channel = "slack_webhook"

    def __init__(self, *, url: str, settings: Settings, store: Store, redactor: Redactor) -> None:
        self._client = AsyncWebhookClient(url, timeout=TIMEOUT_S, retry_handlers=[])
        self._settings = settings
        self._store = store
        self._redactor = redactor

    def wants(self, event: OutboxEvent, task: Task) -> bool:
        """Every event but the planning start (one message per step a person cares about)."""
        return event.status is not TaskStatus.DISCOVERING

    async def deliver(self, delivery: Delivery) -> None:
        """One message for the event."""
        status = delivery.event.status or TaskStatus.QUEUED
        lines: list[str] = []
        if status is TaskStatus.FAILED:
            lines = await last_lines(self._store, delivery.task.task_id)
        text, blocks = event_message(
            delivery.task, self._settings, status, delivery.event.reason, lines
        )
        text, blocks = redact_tree([text, blocks], self._redactor)
        try:
            answer = await self._client.send(text=text, blocks=blocks)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OutboundError(f"Slack webhook unreachable: {exc!r}", retryable=True) from None
        if answer.status_code != 200:
            raise http_failure("Slack webhook", answer.status_code, answer.headers, answer.body)

    async def aclose(self) -> None:
        """Nothing to close: the client opens a session per call."""
