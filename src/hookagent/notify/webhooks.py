"""Signed outbound webhooks: a JSON event per lifecycle change to each configured URL."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from hookagent.errors import OutboundError
from hookagent.models import Task
from hookagent.notify.base import Delivery, http_failure, redact_tree
from hookagent.redact import Redactor
from hookagent.store import OutboxEvent

# The events receivers may rely on; the planning start and a requeue are not among them.
PUBLIC_EVENTS = frozenset(
    {
        "task.created",
        "task.plan_ready",
        "task.approved",
        "task.rejected",
        "task.executing",
        "task.completed",
        "task.failed",
        "task.cancelled",
        "task.merged",
        "task.closed",
    }
)
TASK_FIELDS = (
    "task_id", "status", "source", "repository", "title", "url", "external_id", "attempt",
    "approver", "error", "branch", "pr_url", "pr_number", "pr_opened_at", "pr_ended_at",
    "total_cost_usd", "created_at", "updated_at", "regression_of",
)  # fmt: skip
# A notifier handles one event at a time: a slower answer is retried with backoff
# (HOOKAGENT_NOTIFY_MAX_ATTEMPTS) rather than holding up every task's next notification.
TIMEOUT_S = 10


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``, the ``X-Hookagent-Signature`` value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_id(event: OutboxEvent) -> str:
    """Unique per event, the same on every retry: the task and the outbox entry id."""
    return f"{event.task_id}:{event.event_id}"


class OutboundWebhook:
    """POSTs events to one URL with ``X-Hookagent-Signature``, ``-Delivery`` and ``-Event``."""

    def __init__(self, *, url: str, secret: str | None, redactor: Redactor) -> None:
        self.url = url
        # One state per URL: a retry toward one receiver never resends to another.
        self.channel = "webhook-" + hashlib.sha256(url.encode()).hexdigest()[:12]
        self._secret = secret
        self._redactor = redactor
        self._http = httpx.AsyncClient(timeout=TIMEOUT_S)

    def wants(self, event: OutboxEvent, task: Task) -> bool:
        """Only the documented events."""
        return event.name in PUBLIC_EVENTS

    async def deliver(self, delivery: Delivery) -> None:
        """One signed POST; any 2xx is delivered."""
        event = delivery.event
        payload = redact_tree(body(event, delivery.task), self._redactor)
        raw = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "hookagent",
            "X-Hookagent-Event": event.name,
            "X-Hookagent-Delivery": delivery_id(event),
        }
        if self._secret:
            headers["X-Hookagent-Signature"] = signature(self._secret, raw)
        try:
            answer = await self._http.post(self.url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise OutboundError(f"{self.url} unreachable: {exc!r}", retryable=True) from None
        if not answer.is_success:
            raise http_failure(self.url, answer.status_code, answer.headers, answer.text)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


def body(event: OutboxEvent, task: Task) -> dict[str, Any]:
    """The JSON event: its name, ids, the change and the task as it is now."""
    data = task.model_dump(mode="json", include=set(TASK_FIELDS))
    return {
        "id": delivery_id(event),
        "event": event.name,
        "at": event.at,
        "task_id": event.task_id,
        "status": event.status.value if event.status is not None else "queued",
        "previous": event.previous or None,
        "reason": event.reason or None,
        "task": data,
    }
