"""Reply on the originating Jira issue (REST v2): one comment, edited in place, and an
optional transition once the pull request is open."""

from __future__ import annotations

from typing import Any

import httpx

from hookagent.errors import OutboundError
from hookagent.forges.http import segment
from hookagent.models import Task, TaskStatus
from hookagent.notify.base import Delivery, http_failure
from hookagent.notify.replies import jira_reply
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import OutboxEvent

# A notifier handles one event at a time: a slower answer is retried with backoff
# (HOOKAGENT_NOTIFY_MAX_ATTEMPTS) rather than holding up every task's next notification.
TIMEOUT_S = 15


class JiraReply:
    """``POST /rest/api/2/issue/{key}/comment`` once, then ``PUT …/comment/{id}``."""

    channel = "jira"

    def __init__(self, *, settings: Settings, redactor: Redactor) -> None:
        self._settings = settings
        self._redactor = redactor
        token = settings.jira_api_token.get_secret_value() if settings.jira_api_token else ""
        self._http = httpx.AsyncClient(
            base_url=str(settings.jira_url).rstrip("/"),
            auth=(settings.jira_email or "", token),
            timeout=TIMEOUT_S,
            headers={"Accept": "application/json", "User-Agent": "hookagent"},
        )

    def wants(self, event: OutboxEvent, task: Task) -> bool:
        """Tasks that came from a Jira issue."""
        return task.source == "jira" and bool(task.external_id)

    async def deliver(self, delivery: Delivery) -> None:
        """Write or rewrite the comment; after a pull request, the configured transition."""
        task, key = delivery.task, str(delivery.task.external_id)
        if delivery.event.reason and delivery.event.previous == "pending_approval":
            await delivery.remember(decided=delivery.event.reason)
        body = {
            "body": self._redactor.redact(
                jira_reply(task, self._settings, delivery.state.get("decided"))
            )
        }
        if "comment_id" in delivery.state:
            path = issue_path(key, "comment", delivery.state["comment_id"])
            await self._request("PUT", path, body)
        else:
            created = await self._request("POST", issue_path(key, "comment"), body)
            await delivery.remember(comment_id=str(created["id"]))
        wanted = self._settings.jira_transition_on_pr
        if (
            wanted
            and delivery.event.status is TaskStatus.COMPLETED
            and task.pr_url
            and "transitioned" not in delivery.state
        ):
            await self._transition(key, wanted)
            await delivery.remember(transitioned=wanted)

    async def _transition(self, key: str, name: str) -> None:
        listing = await self._request("GET", issue_path(key, "transitions"), None)
        choices = {str(t.get("name", "")).lower(): t for t in listing.get("transitions") or []}
        chosen = choices.get(name.lower())
        if chosen is None:
            available = ", ".join(sorted(choices)) or "none"
            raise OutboundError(f"Jira issue {key} has no transition {name!r} ({available})")
        await self._request(
            "POST", issue_path(key, "transitions"), {"transition": {"id": chosen["id"]}}
        )

    async def _request(self, method: str, path: str, payload: Any) -> dict[str, Any]:
        try:
            answer = await self._http.request(method, path, json=payload)
        except httpx.HTTPError as exc:
            raise OutboundError(f"Jira unreachable: {exc!r}", retryable=True) from None
        if not answer.is_success:
            raise http_failure("Jira", answer.status_code, answer.headers, answer.text)
        if not answer.content:
            return {}
        data: dict[str, Any] = answer.json()
        return data

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


def issue_path(key: str, *rest: str) -> str:
    """``/rest/api/2/issue/{key}/…``, the key and each further part one quoted segment."""
    return "/".join(["/rest/api/2/issue", *(segment(part) for part in (key, *rest))])
