"""Sentry's REST API: the latest event of an issue, for a prompt whose webhook lacked it.

Not a forge: the one read the worker makes of Sentry. Issue webhooks (``issue.created``)
carry no stack trace or breadcrumbs; ``GET …/issues/{id}/events/latest/`` has both, as
``entries`` of type ``exception`` and ``breadcrumbs`` with camelCase frames
(``absPath``, ``lineNo``, ``inApp``, ``context: [[line, code], …]``).
"""

from __future__ import annotations

from typing import Any

import httpx

from hookagent.briefing.sentry import breadcrumb_lines, exception_lines
from hookagent.errors import OutboundError
from hookagent.forges.http import retry_after, segment
from hookagent.json_values import clip_prompt
from hookagent.settings import Settings


class SentryApi:
    """Reads an issue's latest event with a bearer token (``event:read``)."""

    def __init__(self, *, api_url: str, token: str, timeout: float, org: str | None = None) -> None:
        self._api_url = api_url.rstrip("/")
        self._org = org
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": "hookagent"}

    @classmethod
    def from_settings(cls, settings: Settings) -> SentryApi | None:
        """The client, or None without ``HOOKAGENT_SENTRY_API_TOKEN``."""
        if settings.sentry_api_token is None:
            return None
        token = settings.sentry_api_token.get_secret_value()
        return cls(
            api_url=settings.sentry_api_url,
            token=token,
            timeout=settings.forge_timeout,
            org=settings.sentry_org,
        )

    def latest_path(self, issue_id: str) -> str:
        """The organisation's endpoint with ``HOOKAGENT_SENTRY_ORG``, else the older global one."""
        issue = segment(issue_id)
        if self._org:
            return f"/api/0/organizations/{segment(self._org)}/issues/{issue}/events/latest/"
        return f"/api/0/issues/{issue}/events/latest/"

    async def latest_event(self, issue_id: str) -> dict[str, Any]:
        """The issue's latest event as the API returns it."""
        async with httpx.AsyncClient(base_url=self._api_url, timeout=self._timeout) as client:
            try:
                response = await client.get(self.latest_path(issue_id), headers=self._headers)
            except httpx.HTTPError as exc:
                raise OutboundError(f"Sentry API unreachable: {exc!r}", retryable=True) from None
        code = response.status_code
        if code != 200:
            raise OutboundError(
                f"Sentry API answered {code}: {response.text[:200]}",
                retryable=code == 429 or code >= 500,
                retry_after=retry_after(response.headers.get("retry-after")),
            )
        try:
            data = response.json()
        except ValueError:
            raise OutboundError("Sentry API answered with no JSON", retryable=False) from None
        return data if isinstance(data, dict) else {}


def render_event(event: dict[str, Any]) -> str:
    """The exception with its frames and the breadcrumbs of an API event, as the webhook's are."""
    entries = [e for e in event.get("entries") or [] if isinstance(e, dict)]
    shaped: dict[str, Any] = {}
    for entry in entries:
        data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
        values = [v for v in (data or {}).get("values") or [] if isinstance(v, dict)]
        if entry.get("type") == "exception":
            shaped["exception"] = {"values": [_exception(v) for v in values]}
        elif entry.get("type") == "breadcrumbs":
            shaped["breadcrumbs"] = {"values": values}
    lines = [*exception_lines(shaped, {}), *breadcrumb_lines(shaped)]
    return clip_prompt("\n".join(line for line in lines if line))


def _exception(value: dict[str, Any]) -> dict[str, Any]:
    stack = value.get("stacktrace") if isinstance(value.get("stacktrace"), dict) else {}
    frames = [f for f in (stack or {}).get("frames") or [] if isinstance(f, dict)]
    return {
        "type": value.get("type"),
        "value": value.get("value"),
        "stacktrace": {"frames": [_frame(f) for f in frames]},
    }


def _frame(frame: dict[str, Any]) -> dict[str, Any]:
    """An API frame (camelCase, context pairs) in the event payload's shape."""
    line = frame.get("lineNo")
    code = [c[1] for c in frame.get("context") or [] if isinstance(c, list) and len(c) == 2
            and c[0] == line]  # fmt: skip
    return {
        "filename": frame.get("filename"),
        "abs_path": frame.get("absPath"),
        "lineno": line,
        "function": frame.get("function"),
        "in_app": frame.get("inApp"),
        "context_line": code[0] if code else None,
    }
