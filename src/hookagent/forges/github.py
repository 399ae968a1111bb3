"""Opens pull requests and writes issue comments through the GitHub REST API (or Enterprise)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from hookagent.errors import OutboundError, PullRequestError
from hookagent.forges.http import retry_after

API_VERSION = "2022-11-28"


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The opened pull request."""

    number: int
    url: str


async def open_pull_request(
    *, api_url: str, token: str, repo: str, head: str, base: str, title: str, body: str
) -> PullRequest:
    """``POST /repos/{owner}/{repo}/pulls``; :class:`PullRequestError` carries GitHub's reason."""
    headers = {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "hookagent",
    }
    payload = {"title": title, "head": head, "base": base, "body": body}
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=30) as client:
        try:
            response = await client.post(f"/repos/{repo}/pulls", json=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise PullRequestError(f"GitHub API unreachable: {exc!r}") from None
    if response.status_code != 201:
        raise PullRequestError(f"GitHub answered {response.status_code}: {_reason(response)}")
    data = response.json()
    return PullRequest(number=int(data["number"]), url=str(data["html_url"]))


def _reason(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500]
    message = str(data.get("message", ""))
    errors = data.get("errors") or []
    details = "; ".join(str(e.get("message") or e) for e in errors if isinstance(e, dict))
    if response.status_code in (403, 429) and response.headers.get("x-ratelimit-remaining") == "0":
        message = f"rate limit exceeded ({message})"
    return f"{message} ({details})" if details else message


@dataclass(frozen=True, slots=True)
class IssueComment:
    """A comment hookagent wrote on an issue or pull request."""

    comment_id: int
    url: str


async def create_issue_comment(
    *, api_url: str, token: str, repo: str, number: int, body: str
) -> IssueComment:
    """``POST /repos/{owner}/{repo}/issues/{number}/comments``."""
    path = f"/repos/{repo}/issues/{number}/comments"
    return await _comment("POST", api_url, token, path, body, expect=201)


async def edit_issue_comment(
    *, api_url: str, token: str, repo: str, comment_id: int, body: str
) -> IssueComment:
    """``PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}``."""
    path = f"/repos/{repo}/issues/comments/{comment_id}"
    return await _comment("PATCH", api_url, token, path, body, expect=200)


async def _comment(
    method: str, api_url: str, token: str, path: str, body: str, *, expect: int
) -> IssueComment:
    headers = {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "hookagent",
    }
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=30) as client:
        try:
            response = await client.request(method, path, json={"body": body}, headers=headers)
        except httpx.HTTPError as exc:
            raise OutboundError(f"GitHub API unreachable: {exc!r}", retryable=True) from None
    if response.status_code != expect:
        status = response.status_code
        # GitHub's secondary rate limit is a 403 with Retry-After (or no quota left).
        limited = status == 403 and (
            "retry-after" in response.headers
            or response.headers.get("x-ratelimit-remaining") == "0"
        )
        raise OutboundError(
            f"GitHub answered {status}: {_reason(response)}",
            retryable=limited or status == 429 or status >= 500,
            retry_after=retry_after(response.headers.get("retry-after")),
        )
    data = response.json()
    return IssueComment(comment_id=int(data["id"]), url=str(data.get("html_url", "")))
