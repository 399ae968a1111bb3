"""Linear's GraphQL API: write and edit an issue's comment, read an issue's discussion.

Linear is an issue tracker, not a forge: it implements the comment half of
:class:`~hookagent.forges.base.Forge` and no change requests, so it is not in
``build_forges``. A personal API key goes in ``Authorization`` as is (no ``Bearer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from hookagent.errors import OutboundError
from hookagent.forges.http import retry_after
from hookagent.settings import Settings

# An issue's newest comments read for the prompt; the prompt's cap keeps fewer anyway.
THREAD_COMMENTS = 100

COMMENT_CREATE = """
mutation CommentCreate($issueId: String!, $body: String!) {
  commentCreate(input: {issueId: $issueId, body: $body}) { success comment { id } }
}"""
COMMENT_UPDATE = """
mutation CommentUpdate($id: String!, $body: String!) {
  commentUpdate(id: $id, input: {body: $body}) { success comment { id } }
}"""
# Pinned to createdAt (also Linear's default) and read from the end: the newest comments.
ISSUE_THREAD = """
query IssueThread($id: String!, $last: Int!) {
  issue(id: $id) {
    comments(last: $last, orderBy: createdAt) {
      nodes { id body createdAt user { id name } botActor { name } }
    }
  }
}"""
VIEWER = "query Viewer { viewer { id } }"


@dataclass(frozen=True, slots=True)
class LinearComment:
    """One comment of a Linear issue, as the thread query returns it."""

    comment_id: str
    body: str
    author: str
    author_id: str
    at: str
    by_bot: bool


class LinearClient:
    """``commentCreate``, ``commentUpdate`` and ``issue { comments }`` over one endpoint."""

    def __init__(self, *, api_url: str, api_key: str, timeout: float) -> None:
        self._api_url = api_url
        self._timeout = timeout
        self._headers = {"Authorization": api_key, "User-Agent": "hookagent"}
        self._viewer_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LinearClient | None:
        """The client, or None without ``HOOKAGENT_LINEAR_API_KEY``."""
        if settings.linear_api_key is None:
            return None
        key = settings.linear_api_key.get_secret_value()
        return cls(api_url=settings.linear_api_url, api_key=key, timeout=settings.forge_timeout)

    async def write_comment(self, issue_id: str, body: str) -> str:
        """Add a comment to the issue; its id."""
        data = await self._call(COMMENT_CREATE, {"issueId": issue_id, "body": body})
        return _comment_id(data, "commentCreate")

    async def edit_comment(self, comment_id: str, body: str) -> str:
        """Replace a comment's text; its id."""
        data = await self._call(COMMENT_UPDATE, {"id": comment_id, "body": body})
        return _comment_id(data, "commentUpdate")

    async def viewer_id(self) -> str:
        """The id of the API key's user (asked once per client): who hookagent writes as."""
        if self._viewer_id is None:
            viewer = (await self._call(VIEWER, {})).get("viewer")
            ident = viewer.get("id") if isinstance(viewer, dict) else None
            if not ident:
                raise OutboundError("Linear did not say who the API key is", retryable=False)
            self._viewer_id = str(ident)
        return self._viewer_id

    async def fetch_thread(self, issue_id: str) -> list[LinearComment]:
        """The issue's newest comments (:data:`THREAD_COMMENTS`), oldest first."""
        data = await self._call(ISSUE_THREAD, {"id": issue_id, "last": THREAD_COMMENTS})
        issue = data.get("issue")
        if not isinstance(issue, dict):
            raise OutboundError(f"Linear has no issue {issue_id[:100]!r}", retryable=False)
        nodes = (issue.get("comments") or {}).get("nodes") or []
        found = [_as_comment(node) for node in nodes if isinstance(node, dict)]
        return sorted(found, key=lambda c: c.at)

    async def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """POST one GraphQL operation; its ``data``, or the failure (GraphQL errors included)."""
        payload = {"query": query, "variables": variables}
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            try:
                response = await client.post(self._api_url, json=payload, headers=self._headers)
            except httpx.HTTPError as exc:
                raise OutboundError(f"Linear unreachable: {exc!r}", retryable=True) from None
        code = response.status_code
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if code != 200 or errors:
            # Linear answers 400 with RATELIMITED in the error's extensions when over its rate.
            limited = "RATELIMITED" in str(errors)
            raise OutboundError(
                f"Linear answered {code}: {_messages(errors) or response.text[:300]}",
                retryable=limited or code == 429 or code >= 500,
                retry_after=retry_after(response.headers.get("retry-after")),
            )
        data = answer.get("data") if isinstance(answer, dict) else None
        return data if isinstance(data, dict) else {}


def _comment_id(data: dict[str, Any], operation: str) -> str:
    result = data.get(operation) or {}
    comment = result.get("comment") if isinstance(result, dict) else None
    if not isinstance(comment, dict) or not result.get("success") or not comment.get("id"):
        raise OutboundError(f"Linear {operation} did not succeed", retryable=False)
    return str(comment["id"])


def _as_comment(node: dict[str, Any]) -> LinearComment:
    user = node.get("user") if isinstance(node.get("user"), dict) else {}
    return LinearComment(
        comment_id=str(node.get("id") or ""),
        body=str(node.get("body") or ""),
        author=str((user or {}).get("name") or ""),
        author_id=str((user or {}).get("id") or ""),
        at=str(node.get("createdAt") or ""),
        by_bot=node.get("botActor") is not None or not user,
    )


def _messages(errors: Any) -> str:
    if not isinstance(errors, list):
        return ""
    return "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))[:300]
