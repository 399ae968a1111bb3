"""What every channel shares: the sender interface, one delivery, HTTP failure classes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hookagent.errors import OutboundError
from hookagent.forges.http import retry_after
from hookagent.models import Task
from hookagent.redact import Redactor
from hookagent.store import OutboxEvent

SaveState = Callable[[dict[str, str]], Awaitable[None]]


@dataclass(slots=True)
class Delivery:
    """One event for one channel: the task as it is now and what the channel did before."""

    event: OutboxEvent
    task: Task
    state: dict[str, str]
    save: SaveState

    async def remember(self, **fields: str) -> None:
        """Store ``fields`` in the channel's state (and in this delivery's copy of it)."""
        self.state.update(fields)
        await self.save(dict(fields))


class Sender(Protocol):
    """One notification channel: Slack, an incoming webhook, a URL, a source reply."""

    channel: str

    def wants(self, event: OutboxEvent, task: Task) -> bool:
        """Whether this channel has something to say about ``event``."""
        ...

    async def deliver(self, delivery: Delivery) -> None:
        """Send (or edit) what the event calls for; :class:`OutboundError` on failure."""
        ...

    async def aclose(self) -> None:
        """Release the channel's HTTP resources."""
        ...


def http_failure(
    service: str, status: int, headers: Mapping[str, str], detail: str
) -> OutboundError:
    """The error for an HTTP answer: 429 and 5xx may be retried, honouring ``Retry-After``."""
    retryable = status == 429 or status >= 500
    return OutboundError(
        f"{service} answered {status}: {detail[:300]}",
        retryable=retryable,
        retry_after=retry_after(headers.get("retry-after") or headers.get("Retry-After")),
    )


def redact_tree(value: Any, redactor: Redactor) -> Any:
    """``value`` (JSON-like) with every string passed through the redactor."""
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, list):
        return [redact_tree(item, redactor) for item in value]
    if isinstance(value, dict):
        return {key: redact_tree(item, redactor) for key, item in value.items()}
    return value
