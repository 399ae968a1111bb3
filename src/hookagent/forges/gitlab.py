"""GitLab behind the forge interface: merge requests, issue notes, reviews (REST v4, any instance).

Projects are addressed by their URL-encoded ``path_with_namespace`` (``group%2Fsub%2Fproject``),
so nested groups need no project-id lookup; the token goes in ``PRIVATE-TOKEN``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from hookagent.errors import OutboundError, PullRequestError
from hookagent.forges.base import (
    MAX_FAILED_CHECKS,
    ChangeRequest,
    Comment,
    FailedCheck,
    InlineComment,
    PullInfo,
    Review,
    Thread,
)
from hookagent.forges.http import retry_after, segment
from hookagent.settings import Settings

# Pages of 100 notes read for one thread; a longer thread is read up to there.
MAX_PAGES = 10
# What GitLab runs as a quick action (``/approve``, ``/merge``, ``/label ~x``): a line that
# starts with ``/`` and a word, outside a closed ```` ``` ```` block, in a note or a
# description, created or edited, through the API too, as the token's user.
_QUICK_ACTION = re.compile(r"^(\s*)/(?=[A-Za-z0-9_])")
# The payload fields GitLab reads quick actions from.
_TEXT_FIELDS = ("body", "description")
# The users GitLab makes for project and group access tokens: ``project_42_bot_<hash>``.
_BOT_USERNAME = re.compile(r"^(?:project|group)_\d+_bot(?:_\w+)?$")


class GitLabForge:
    """The :class:`~hookagent.forges.base.Forge` for gitlab.com and self-managed GitLab."""

    name = "gitlab"

    def __init__(self, *, api_url: str, token: str, timeout: float) -> None:
        self._api_url = api_url.rstrip("/")
        self._headers = {"PRIVATE-TOKEN": token, "User-Agent": "hookagent"}
        self._timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> GitLabForge | None:
        """The forge, or None without ``HOOKAGENT_GITLAB_TOKEN``."""
        if settings.gitlab_token is None:
            return None
        return cls(
            api_url=settings.gitlab_api_url,
            token=settings.gitlab_token.get_secret_value(),
            timeout=settings.forge_timeout,
        )

    async def open_change_request(
        self, *, repo: str, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> ChangeRequest:
        """``POST /projects/:id/merge_requests``; :class:`PullRequestError` carries the reason.

        A draft is GitLab's ``Draft:`` title prefix.
        """
        payload = {
            "source_branch": head,
            "target_branch": base,
            "title": f"Draft: {title}" if draft else title,
            "description": body,
            "remove_source_branch": True,
        }
        try:
            response = await self._send(
                "POST", f"/projects/{segment(repo)}/merge_requests", payload
            )
        except OutboundError as exc:
            raise PullRequestError(exc.message) from None
        if response.status_code != 201:
            raise PullRequestError(f"GitLab answered {response.status_code}: {_reason(response)}")
        data = response.json()
        iid = int(data["iid"])
        return ChangeRequest(
            iid, str(data["web_url"]), ref=f"{repo}!{iid}", label=f"merge request !{iid}"
        )

    async def write_comment(self, thread: Thread, body: str) -> Comment:
        """``POST /projects/:id/issues/:iid/notes``."""
        response = await self._send("POST", _notes(thread), {"body": body})
        return _as_comment(_expect(response, 201))

    async def edit_comment(self, thread: Thread, comment_id: str, body: str) -> Comment:
        """``PUT /projects/:id/issues/:iid/notes/:note_id``."""
        path = f"{_notes(thread)}/{segment(comment_id)}"
        response = await self._send("PUT", path, {"body": body})
        return _as_comment(_expect(response, 200))

    async def comment_on_change(self, repo: str, number: int, body: str) -> Comment:
        """``POST /projects/:id/merge_requests/:iid/notes``."""
        path = f"/projects/{segment(repo)}/merge_requests/{segment(number)}/notes"
        return _as_comment(_expect(await self._send("POST", path, {"body": body}), 201))

    async def reply_in_review(self, repo: str, number: int, reply_to: str, body: str) -> Comment:
        """``POST /projects/:id/merge_requests/:iid/discussions/:discussion_id/notes``."""
        path = (
            f"/projects/{segment(repo)}/merge_requests/{segment(number)}/discussions/"
            f"{segment(reply_to)}/notes"
        )
        return _as_comment(_expect(await self._send("POST", path, {"body": body}), 201))

    async def fetch_thread(self, thread: Thread) -> list[Comment]:
        """``GET /projects/:id/issues/:iid/notes``, oldest first, following ``X-Next-Page``."""
        found: list[Comment] = []
        page = "1"
        for _ in range(MAX_PAGES):
            query = {"sort": "asc", "order_by": "created_at", "per_page": "100", "page": page}
            response = await self._send("GET", _notes(thread), None, params=query)
            rows = _expect(response, 200)
            found += [_as_comment(row) for row in rows if isinstance(row, dict)]
            page = response.headers.get("x-next-page", "")
            if not page:
                break
        return found

    async def fetch_change_request(self, repo: str, number: int) -> PullInfo:
        """``GET /projects/:id/merge_requests/:iid``."""
        path = f"/projects/{segment(repo)}/merge_requests/{segment(number)}"
        data = _expect(await self._send("GET", path, None), 200)
        request = data if isinstance(data, dict) else {}
        refs = _dict(request.get("diff_refs"))
        return PullInfo(
            number=number,
            title=str(request.get("title") or ""),
            body=str(request.get("description") or ""),
            author=str(_dict(request.get("author")).get("username") or ""),
            base=str(request.get("target_branch") or ""),
            head_sha=str(refs.get("head_sha") or request.get("sha") or ""),
            head_ref=f"refs/merge-requests/{number}/head",
            url=str(request.get("web_url") or ""),
            base_sha=str(refs.get("base_sha") or ""),
            start_sha=str(refs.get("start_sha") or ""),
        )

    async def post_review(self, repo: str, pull: PullInfo, review: Review) -> str:
        """One discussion per inline comment, then one holding the summary.

        ``POST /projects/:id/merge_requests/:iid/discussions``; a comment GitLab refuses to
        place (400: a position outside the diff) goes into the summary instead.
        """
        path = f"/projects/{segment(repo)}/merge_requests/{segment(pull.number)}/discussions"
        unplaced: list[InlineComment] = []
        for comment in review.comments:
            position = {
                "position_type": "text",
                "base_sha": pull.base_sha,
                "start_sha": pull.start_sha,
                "head_sha": review.commit,
                "old_path": comment.old_path or comment.path,
                "new_path": comment.path,
                "new_line": comment.line,
            }
            answer = await self._send("POST", path, {"body": comment.body, "position": position})
            if answer.status_code == 400:
                unplaced.append(comment)
                continue
            _expect(answer, 201)
        body = review.body + "".join(f"\n\n**{c.path}:{c.line}**\n\n{c.body}" for c in unplaced)
        _expect(await self._send("POST", path, {"body": body}), 201)
        return pull.url

    async def failed_checks(self, repo: str, sha: str, pipeline: str | None) -> list[FailedCheck]:
        """``GET /projects/:id/pipelines/:pid/jobs?scope[]=failed`` and each job's trace."""
        if not pipeline:
            return []
        project = segment(repo)
        path = f"/projects/{project}/pipelines/{segment(pipeline)}/jobs"
        params = {"scope[]": "failed", "per_page": "100"}
        jobs = _expect(await self._send("GET", path, None, params=params), 200)
        found: list[FailedCheck] = []
        for job in [_dict(j) for j in (jobs if isinstance(jobs, list) else [])][:MAX_FAILED_CHECKS]:
            trace = await self._send(
                "GET", f"/projects/{project}/jobs/{segment(str(job.get('id')))}/trace", None
            )
            log = (
                trace.text
                if trace.status_code == 200
                else f"(trace unavailable: {trace.status_code})"
            )
            where = f"stage {job.get('stage') or '?'}, {job.get('failure_reason') or 'failed'}"
            found.append(FailedCheck(name=str(job.get("name") or "job"), details=where, log=log))
        return found

    async def _send(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        *,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self._api_url, timeout=self._timeout) as client:
            try:
                # Every note and description we write: nothing in it is a quick action.
                sent = _inert_payload(payload)
                return await client.request(
                    method, path, json=sent, params=params, headers=self._headers
                )
            except httpx.HTTPError as exc:
                raise OutboundError(f"GitLab API unreachable: {exc!r}", retryable=True) from None


def inert(text: str) -> str:
    """``text`` with every line GitLab would run as a quick action escaped (``\\/``).

    Plans, reviews, test output and CI logs are text an agent or a stranger wrote; posted
    by hookagent they would act with its token (approve or merge a merge request, move
    or relabel an issue). The escape renders as the same ``/``. Lines inside a closed
    ```` ``` ```` block, which GitLab skips, are left as they are; an unclosed one is text.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j] == "```"), None)
            if end is not None:
                out += lines[i : end + 1]
                i = end + 1
                continue
        out.append(_QUICK_ACTION.sub(r"\1\\/", line))
        i += 1
    return "\n".join(out)


def _inert_payload(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    if payload is None:
        return None
    return {
        key: inert(value) if key in _TEXT_FIELDS and isinstance(value, str) else value
        for key, value in payload.items()
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _notes(thread: Thread) -> str:
    """The notes of an issue; a project's ``:id`` is its full path, ``/`` encoded too."""
    return f"/projects/{segment(thread.repo)}/issues/{segment(thread.number)}/notes"


def _expect(response: httpx.Response, status: int) -> Any:
    """The JSON of an answer with ``status``, else the retryable-or-not failure."""
    if response.status_code != status:
        code = response.status_code
        raise OutboundError(
            f"GitLab answered {code}: {_reason(response)}",
            retryable=code == 429 or code >= 500,
            retry_after=retry_after(response.headers.get("retry-after")),
        )
    return response.json()


def _as_comment(row: Any) -> Comment:
    note = row if isinstance(row, dict) else {}
    author = note.get("author") if isinstance(note.get("author"), dict) else {}
    username = str((author or {}).get("username", ""))
    return Comment(
        comment_id=str(note.get("id", "")),
        body=str(note.get("body") or ""),
        author=username,
        at=str(note.get("created_at") or ""),
        system=note.get("system") is True,
        by_bot=(author or {}).get("bot") is True or bool(_BOT_USERNAME.match(username)),
    )


def _reason(response: httpx.Response) -> str:
    """GitLab's ``message`` (a string, a list, or field → errors) or ``error``."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500]
    if not isinstance(data, dict):
        return str(data)[:500]
    message = data.get("message", data.get("error", ""))
    if isinstance(message, list):
        return "; ".join(map(str, message))[:500]
    if isinstance(message, dict):
        parts = [
            f"{k} {'; '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in message.items()
        ]
        return "; ".join(parts)[:500]
    return str(message)[:500]
