"""Opens pull requests through the GitHub REST API (github.com or Enterprise)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from hookagent.errors import PullRequestError

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
