"""GitHub behind the forge interface: pull requests and issue comments (REST, or Enterprise)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from hookagent.errors import OutboundError, PullRequestError
from hookagent.forges.base import (
    MAX_FAILED_CHECKS,
    ChangeRequest,
    Comment,
    FailedCheck,
    PullInfo,
    Review,
    Thread,
)
from hookagent.forges.http import github_repo_path, retry_after, segment
from hookagent.settings import Settings

API_VERSION = "2022-11-28"
# Comments per page, and pages read for one thread (a longer thread is read up to there).
# The one paging rule: ask for the next page while GitHub's ``Link`` header offers one.
PER_PAGE = 100
MAX_PAGES = 10


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The opened pull request."""

    number: int
    url: str


class GitHubForge:
    """The :class:`~hookagent.forges.base.Forge` for GitHub and GitHub Enterprise."""

    name = "github"

    def __init__(self, *, api_url: str, token: str, timeout: float) -> None:
        self._api_url = api_url
        self._token = token
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> GitHubForge | None:
        """The forge, or None without ``HOOKAGENT_GITHUB_TOKEN``."""
        if settings.github_token is None:
            return None
        return cls(
            api_url=settings.github_api_url,
            token=settings.github_token.get_secret_value(),
            timeout=settings.forge_timeout,
        )

    async def open_change_request(
        self, *, repo: str, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> ChangeRequest:
        """``POST /repos/{owner}/{repo}/pulls`` (``draft: true`` for a draft)."""
        pull = await open_pull_request(
            api_url=self._api_url, token=self._token, timeout=self._timeout, repo=repo,
            head=head, base=base, title=title, body=body, draft=draft,
        )  # fmt: skip
        ref = f"{repo}#{pull.number}"
        return ChangeRequest(pull.number, pull.url, ref=ref, label=f"pull request #{pull.number}")

    async def write_comment(self, thread: Thread, body: str) -> Comment:
        """``POST /repos/{owner}/{repo}/issues/{number}/comments``."""
        made = await create_issue_comment(
            api_url=self._api_url, token=self._token, timeout=self._timeout, repo=thread.repo,
            number=thread.number, body=body,
        )  # fmt: skip
        return Comment(str(made.comment_id), body, url=made.url)

    async def edit_comment(self, thread: Thread, comment_id: str, body: str) -> Comment:
        """``PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}``."""
        made = await edit_issue_comment(
            api_url=self._api_url, token=self._token, timeout=self._timeout, repo=thread.repo,
            comment_id=int(comment_id), body=body,
        )  # fmt: skip
        return Comment(str(made.comment_id), body, url=made.url)

    async def comment_on_change(self, repo: str, number: int, body: str) -> Comment:
        """``POST /repos/{owner}/{repo}/issues/{number}/comments``: a pull request is an issue."""
        return await self.write_comment(Thread(repo, number), body)

    async def reply_in_review(self, repo: str, number: int, reply_to: str, body: str) -> Comment:
        """``POST /repos/{owner}/{repo}/pulls/{number}/comments/{comment_id}/replies``."""
        path = (
            f"{github_repo_path(repo)}/pulls/{segment(number)}/comments/{segment(reply_to)}/replies"
        )
        made = await _comment("POST", self._api_url, self._token, self._timeout, path, body,
                              expect=201)  # fmt: skip
        return Comment(str(made.comment_id), body, url=made.url)

    async def fetch_thread(self, thread: Thread) -> list[Comment]:
        """``GET /repos/{owner}/{repo}/issues/{number}/comments``, oldest first, page by page."""
        path = f"{github_repo_path(thread.repo)}/issues/{segment(thread.number)}/comments"
        found: list[Comment] = []
        base_url = self._api_url.rstrip("/")
        async with httpx.AsyncClient(base_url=base_url, timeout=self._timeout) as client:
            for page in range(1, MAX_PAGES + 1):
                params = {"per_page": PER_PAGE, "page": page}
                try:
                    response = await client.get(path, params=params, headers=_headers(self._token))
                except httpx.HTTPError as exc:
                    raise OutboundError(
                        f"GitHub API unreachable: {exc!r}", retryable=True
                    ) from None
                if response.status_code != 200:
                    raise _failure(response)
                rows = response.json()
                found += [_as_comment(row) for row in rows if isinstance(row, dict)]
                if 'rel="next"' not in response.headers.get("link", ""):
                    break
        return found

    async def fetch_change_request(self, repo: str, number: int) -> PullInfo:
        """``GET /repos/{owner}/{repo}/pulls/{number}``."""
        path = f"{github_repo_path(repo)}/pulls/{segment(number)}"
        data = await self._call("GET", path, None, expect=200)
        pull = data if isinstance(data, dict) else {}
        head, base = _dict(pull.get("head")), _dict(pull.get("base"))
        return PullInfo(
            number=number,
            title=str(pull.get("title") or ""),
            body=str(pull.get("body") or ""),
            author=str(_dict(pull.get("user")).get("login") or ""),
            base=str(base.get("ref") or ""),
            head_sha=str(head.get("sha") or ""),
            head_ref=f"refs/pull/{number}/head",
            url=str(pull.get("html_url") or ""),
        )

    async def post_review(self, repo: str, pull: PullInfo, review: Review) -> str:
        """``POST /repos/{owner}/{repo}/pulls/{number}/reviews``, ``event: COMMENT``.

        Should GitHub refuse the inline comments (422: a line it does not count as part of
        the diff), the same review is posted once more with them in its body.
        """
        path = f"{github_repo_path(repo)}/pulls/{segment(pull.number)}/reviews"
        comments = [
            {"path": c.path, "line": c.line, "side": "RIGHT", "body": c.body}
            for c in review.comments
        ]
        payload = {"commit_id": review.commit, "event": "COMMENT", "body": review.body}
        try:
            data = await self._call("POST", path, payload | {"comments": comments}, expect=200)
        except OutboundError as exc:
            if not comments or "answered 422" not in exc.message:
                raise
            folded = review.body + "".join(
                f"\n\n**{c.path}:{c.line}**\n\n{c.body}" for c in review.comments
            )
            data = await self._call("POST", path, payload | {"body": folded}, expect=200)
        return str(_dict(data).get("html_url") or pull.url)

    async def failed_checks(self, repo: str, sha: str, pipeline: str | None) -> list[FailedCheck]:
        """``GET …/commits/{sha}/check-runs``: failed runs' output, annotations, Actions log."""
        base = github_repo_path(repo)
        path = f"{base}/commits/{segment(sha)}/check-runs?filter=latest&per_page={PER_PAGE}"
        runs = [_dict(r) for r in _dict(await self._call("GET", path, None, expect=200)).get(
            "check_runs", [])]  # fmt: skip
        failed = [r for r in runs if r.get("conclusion") in {"failure", "timed_out"}]
        return [await self._failed_run(base, run) for run in failed[:MAX_FAILED_CHECKS]]

    async def _failed_run(self, base: str, run: dict[str, Any]) -> FailedCheck:
        """One failed check run: its output, annotations and (for Actions) its job's log."""
        run_id, output = segment(str(run.get("id"))), _dict(run.get("output"))
        said = [str(output.get(k) or "") for k in ("title", "summary", "text")]
        try:
            path = f"{base}/check-runs/{run_id}/annotations?per_page=50"
            notes = await self._call("GET", path, None, expect=200)
            said += [_annotation(_dict(n)) for n in (notes if isinstance(notes, list) else [])]
        except OutboundError as exc:
            said.append(f"(annotations unavailable: {exc.message})")
        log = ""
        # An Actions check run's id is its job's id.
        if _dict(run.get("app")).get("slug") == "github-actions":
            log = await self._job_log(f"{base}/actions/jobs/{run_id}/logs")
        text = "\n".join(s for s in said if s.strip())
        return FailedCheck(name=str(run.get("name") or "check"), details=text, log=log)

    async def _job_log(self, path: str) -> str:
        """An Actions job's log: GitHub answers with a redirect to the file (auth not resent)."""
        async with httpx.AsyncClient(
            base_url=self._api_url.rstrip("/"), timeout=self._timeout, follow_redirects=True
        ) as client:
            try:
                response = await client.get(path, headers=_headers(self._token))
            except httpx.HTTPError as exc:
                return f"(log unavailable: {exc!r})"
        if response.status_code != 200:
            return f"(log unavailable: GitHub answered {response.status_code})"
        return response.text

    async def _call(self, method: str, path: str, payload: Any, *, expect: int) -> Any:
        base_url = self._api_url.rstrip("/")
        async with httpx.AsyncClient(base_url=base_url, timeout=self._timeout) as client:
            try:
                response = await client.request(
                    method, path, json=payload, headers=_headers(self._token)
                )
            except httpx.HTTPError as exc:
                raise OutboundError(f"GitHub API unreachable: {exc!r}", retryable=True) from None
        if response.status_code != expect:
            raise _failure(response)
        return response.json()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _annotation(note: dict[str, Any]) -> str:
    """``path:line: level: message``, as a compiler would say it."""
    where = f"{note.get('path') or '?'}:{note.get('start_line') or '?'}"
    return f"{where}: {note.get('annotation_level') or 'failure'}: {note.get('message') or ''}"


def _as_comment(row: dict[str, Any]) -> Comment:
    user = row.get("user") if isinstance(row.get("user"), dict) else {}
    return Comment(
        comment_id=str(row.get("id", "")),
        body=str(row.get("body") or ""),
        author=str((user or {}).get("login") or ""),
        url=str(row.get("html_url", "")),
        at=str(row.get("created_at") or ""),
        by_bot=(user or {}).get("type") == "Bot",
    )


def _headers(token: str) -> dict[str, str]:
    return {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": API_VERSION,
        "User-Agent": "hookagent",
    }


async def open_pull_request(
    *,
    api_url: str,
    token: str,
    timeout: float,
    repo: str,
    head: str,
    base: str,
    title: str,
    body: str,
    draft: bool = False,
) -> PullRequest:
    """``POST /repos/{owner}/{repo}/pulls``; :class:`PullRequestError` carries GitHub's reason."""
    payload: dict[str, str | bool] = {"title": title, "head": head, "base": base, "body": body}
    if draft:
        payload["draft"] = True
    try:
        path = f"{github_repo_path(repo)}/pulls"
    except OutboundError as exc:
        raise PullRequestError(exc.message) from None
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=timeout) as client:
        try:
            response = await client.post(path, json=payload, headers=_headers(token))
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
    *, api_url: str, token: str, timeout: float, repo: str, number: int, body: str
) -> IssueComment:
    """``POST /repos/{owner}/{repo}/issues/{number}/comments``."""
    path = f"{github_repo_path(repo)}/issues/{segment(number)}/comments"
    return await _comment("POST", api_url, token, timeout, path, body, expect=201)


async def edit_issue_comment(
    *, api_url: str, token: str, timeout: float, repo: str, comment_id: int, body: str
) -> IssueComment:
    """``PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}``."""
    path = f"{github_repo_path(repo)}/issues/comments/{segment(comment_id)}"
    return await _comment("PATCH", api_url, token, timeout, path, body, expect=200)


async def _comment(
    method: str, api_url: str, token: str, timeout: float, path: str, body: str, *, expect: int
) -> IssueComment:
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=timeout) as client:
        try:
            response = await client.request(
                method, path, json={"body": body}, headers=_headers(token)
            )
        except httpx.HTTPError as exc:
            raise OutboundError(f"GitHub API unreachable: {exc!r}", retryable=True) from None
    if response.status_code != expect:
        raise _failure(response)
    data = response.json()
    return IssueComment(comment_id=int(data["id"]), url=str(data.get("html_url", "")))


def _failure(response: httpx.Response) -> OutboundError:
    status = response.status_code
    # GitHub's secondary rate limit is a 403 with Retry-After (or no quota left).
    limited = status == 403 and (
        "retry-after" in response.headers or response.headers.get("x-ratelimit-remaining") == "0"
    )
    return OutboundError(
        f"GitHub answered {status}: {_reason(response)}",
        retryable=limited or status == 429 or status >= 500,
        retry_after=retry_after(response.headers.get("retry-after")),
    )
