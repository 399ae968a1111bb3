"""Reads an issue's comments through the GitHub REST API, oldest first."""

from __future__ import annotations

import httpx

from hookagent.errors import OutboundError
from hookagent.forges.github import API_VERSION
from hookagent.forges.http import github_repo_path, segment
from hookagent.thread import Comment, is_own_comment

PER_PAGE = 100
# Beyond this the prompt's cap keeps only the newest anyway; stop reading pages.
MAX_PAGES = 5


async def issue_comments(
    *,
    api_url: str,
    token: str | None,
    timeout: float,
    repo: str,
    number: int,
    skip_login: str | None = None,
) -> list[Comment]:
    """``GET /repos/{o}/{r}/issues/{n}/comments`` pages, without bots' and hookagent's own."""
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "hookagent",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    found: list[Comment] = []
    path = f"{github_repo_path(repo)}/issues/{segment(number)}/comments"
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=timeout) as client:
        for page in range(1, MAX_PAGES + 1):
            try:
                response = await client.get(
                    path, params={"per_page": PER_PAGE, "page": page}, headers=headers
                )
            except httpx.HTTPError as exc:
                raise OutboundError(f"GitHub API unreachable: {exc!r}", retryable=True) from None
            if response.status_code != 200:
                raise OutboundError(f"GitHub answered {response.status_code}", retryable=False)
            items = response.json()
            items = items if isinstance(items, list) else []
            for item in items:
                user = item.get("user") or {}
                login, body = str(user.get("login") or ""), str(item.get("body") or "")
                if user.get("type") == "Bot" or is_own_comment(body):
                    continue
                if skip_login and login.lower() == skip_login.strip().lower():
                    continue
                found.append(Comment(login, str(item.get("created_at") or ""), body))
            if len(items) < PER_PAGE:
                break
    return found
