"""A stand-in for the GitHub REST API (pull requests, comments, reviews, checks), recording."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.stub_server import LocalServer

# GitHub's pull request ``id`` (not its number): what a ``pull_request`` event carries too.
PULL_ID_BASE = 2_103_949_000


class GitHubStub(LocalServer):
    """``POST …/pulls`` → 201; ``POST …/issues/{n}/comments`` → 201; ``PATCH …/comments/{id}``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: tuple[int, dict[str, Any], dict[str, str]] | None = None
        self.comments: dict[int, str] = {}  # comment id → its current body
        self.pulls = 0
        # Replies to review comments: the pull request, the comment replied to, the body.
        self.replies: list[dict[str, Any]] = []
        self.opened: dict[int, dict[str, Any]] = {}  # number → the pull request as answered
        # What ``GET …/issues/{n}/comments`` lists (GitHub's shape), one page of 100 at a time.
        self.thread: list[dict[str, Any]] = []
        # Pull requests hookagent did not open (``GET …/pulls/{n}``), and the reviews posted.
        self.pull_info: dict[int, dict[str, Any]] = {}
        self.reviews: list[dict[str, Any]] = []
        # Checks: runs per head sha, annotations and Actions job logs per check run id.
        self.check_runs: dict[str, list[dict[str, Any]]] = {}
        self.annotations: dict[int, list[dict[str, Any]]] = {}
        self.job_logs: dict[int, str] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_GET(self) -> None:
                self._handle("GET")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length)) if length else {}
                with stub.changed:
                    stub.requests.append(
                        {"method": method, "path": self.path, "headers": dict(self.headers),
                         "body": body}
                    )  # fmt: skip
                    status, payload, headers = stub.answer(method, self.path, body)
                self._send(status, payload, headers)
                stub.notify()

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                raw = isinstance(payload, bytes)  # a log file, as the blob store serves it
                data = payload if raw else json.dumps(payload).encode()
                self.send_response(status)
                kind = "text/plain" if raw else "application/json; charset=utf-8"
                self.send_header("content-type", kind)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)

    def answer(
        self, method: str, path: str, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        """What GitHub would answer (called with the lock held)."""
        path, _, query = path.partition("?")
        parts = path.strip("/").split("/")
        if self.fail_with is not None:
            return self.fail_with
        if method == "GET" and (checks := self._checks(parts)) is not None:
            return checks
        if method == "GET" and len(parts) == 6 and parts[3] == "issues" and parts[5] == "comments":
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            page, per_page = int(params.get("page", "1")), int(params.get("per_page", "30"))
            last = max(1, -(-len(self.thread) // per_page))
            return (
                200,
                self.thread[(page - 1) * per_page : page * per_page],
                _links(f"{self.url}{path}", page, last, per_page),
            )
        if (
            len(parts) in (5, 6)
            and parts[0] == "repos"
            and parts[3] == "pulls"
            and int(parts[4]) in self.pull_info
        ):
            return self._pull(method, int(parts[4]), parts[5:], body)
        if method == "POST" and len(parts) == 4 and parts[0] == "repos" and parts[3] == "pulls":
            self.pulls += 1
            number = self.pulls + 40
            owner, repo = parts[1], parts[2]
            html = f"https://github.com/{owner}/{repo}/pull/{number}"
            pull = {"id": PULL_ID_BASE + number, "number": number, "state": "open",
                    "html_url": html, "head": {"ref": body["head"]},
                    "base": {"ref": body["base"]}}  # fmt: skip
            self.opened[number] = pull | {"repo": f"{owner}/{repo}"}
            return 201, pull, {}
        if method == "POST" and len(parts) == 8 and parts[3] == "pulls" and parts[7] == "replies":
            # ``POST /repos/{owner}/{repo}/pulls/{number}/comments/{comment_id}/replies``
            reply_id = 7000 + len(self.replies)
            self.replies.append({"number": int(parts[4]), "comment_id": int(parts[6]),
                                 "body": body["body"]})  # fmt: skip
            return 201, {"id": reply_id, "html_url": f"https://github.com/r/{reply_id}"}, {}
        if method == "POST" and len(parts) == 6 and parts[3] == "issues" and parts[5] == "comments":
            comment_id = 9000 + len(self.comments)
            self.comments[comment_id] = body["body"]
            return 201, {"id": comment_id, "html_url": f"https://github.com/c/{comment_id}"}, {}
        if method == "PATCH" and len(parts) == 6 and parts[3:5] == ["issues", "comments"]:
            comment_id = int(parts[5])
            if comment_id not in self.comments:
                return 404, {"message": "Not Found"}, {}
            self.comments[comment_id] = body["body"]
            return 200, {"id": comment_id, "html_url": f"https://github.com/c/{comment_id}"}, {}
        return 404, {"message": "Not Found"}, {}

    def _checks(self, parts: list[str]) -> tuple[int, Any, dict[str, str]] | None:
        """Check runs of a commit, a run's annotations, an Actions job's log (via a redirect)."""
        if parts[:2] == ["blobs", "job-logs"]:
            log = self.job_logs.get(int(parts[2]))
            return (200, log.encode(), {}) if log is not None else (404, {"message": "gone"}, {})
        if len(parts) < 6 or parts[0] != "repos":
            return None
        if parts[3] == "commits" and parts[5:] == ["check-runs"]:
            runs = self.check_runs.get(parts[4], [])
            return 200, {"total_count": len(runs), "check_runs": runs}, {}
        if parts[3] == "check-runs" and parts[5:] == ["annotations"]:
            return 200, self.annotations.get(int(parts[4]), []), {}
        if parts[3:5] == ["actions", "jobs"] and parts[6:] == ["logs"]:
            # GitHub answers 302 to a short-lived URL of the log file.
            return 302, {}, {"location": f"{self.url}/blobs/job-logs/{parts[5]}"}
        return None

    def add_failed_run(
        self, sha: str, run_id: int, *, name: str = "test (3.12)", log: str = "",
        annotations: tuple[str, ...] = (), conclusion: str = "failure",
    ) -> dict[str, Any]:  # fmt: skip
        """A check run of GitHub Actions that failed on ``sha``, with its annotations and log."""
        run = {
            "id": run_id, "name": name, "head_sha": sha, "status": "completed",
            "conclusion": conclusion, "app": {"slug": "github-actions"},
            "output": {"title": f"{name} failed", "summary": "Process completed with exit code 1.",
                       "text": None},
        }  # fmt: skip
        with self.changed:
            self.check_runs.setdefault(sha, []).append(run)
            self.annotations[run_id] = [
                {"path": ".github", "start_line": 1, "annotation_level": "failure", "message": m}
                for m in annotations
            ]
            self.job_logs[run_id] = log
        return run

    def check_run_event(
        self, number: int, sha: str, run_id: int, *, name: str = "test (3.12)",
        conclusion: str = "failure", branch: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """``check_run`` ``completed`` for the head of a pull request opened here."""
        pull = self.opened[number]
        head = branch or pull["head"]["ref"]
        return {
            "action": "completed",
            "check_run": {
                "id": run_id, "name": name, "head_sha": sha, "status": "completed",
                "conclusion": conclusion, "app": {"slug": "github-actions"},
                "check_suite": {"id": run_id + 1, "head_branch": head, "head_sha": sha},
                "pull_requests": [] if branch else [{"number": number, "head": {"ref": head}}],
            },
            "repository": {"full_name": pull["repo"]},
            "sender": {"login": "github-actions[bot]", "type": "Bot"},
        }  # fmt: skip

    def _pull(
        self, method: str, number: int, rest: list[str], body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        """``GET …/pulls/{n}`` and ``POST …/pulls/{n}/reviews`` (GitHub's shapes)."""
        pull = self.pull_info.get(number)
        if pull is None:
            return 404, {"message": "Not Found"}, {}
        if method == "GET" and not rest:
            return 200, pull, {}
        if method == "POST" and rest == ["reviews"]:
            if body.get("event") not in {"COMMENT", "APPROVE", "REQUEST_CHANGES"}:
                return 422, {"message": "Unprocessable Entity"}, {}
            for comment in body.get("comments", []):
                if not {"path", "line", "body"} <= set(comment):
                    return 422, {"message": "Unprocessable Entity"}, {}
            review_id = 80_000 + len(self.reviews)
            self.reviews.append(body | {"number": number})
            html = f"{pull['html_url']}#pullrequestreview-{review_id}"
            return 200, {"id": review_id, "state": "COMMENTED", "html_url": html}, {}
        return 404, {"message": "Not Found"}, {}

    def add_pull(
        self, repo: str, number: int, *, head: str, base: str = "main", by: str = "pat-dev",
        sha: str = "", title: str = "Add a median", body: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        """A pull request someone opened, as ``GET …/pulls/{n}`` answers it."""
        html = f"https://github.com/{repo}/pull/{number}"
        pull = {
            "id": PULL_ID_BASE + number, "number": number, "state": "open", "title": title,
            "body": body, "html_url": html, "user": {"login": by, "id": 7001, "type": "User"},
            "head": {"ref": head, "sha": sha}, "base": {"ref": base},
        }  # fmt: skip
        with self.changed:
            self.pull_info[number] = pull
        return pull

    def comment_requests(self) -> list[dict[str, Any]]:
        """The comment writes received, in order (reads of the thread are not writes)."""
        return [r for r in self.requests if "/issues/" in r["path"] and r["method"] != "GET"]

    def closed_event(
        self, number: int, *, merged: bool, by: str = "lee-lead", at: str = "2026-03-02T15:40:51Z"
    ) -> dict[str, Any]:
        """The ``pull_request`` ``closed`` delivery GitHub sends for a pull request opened here."""
        pull = self.opened[number]
        user = {"login": by, "id": 5821, "type": "User"}
        return {
            "action": "closed",
            "number": number,
            "pull_request": {
                "id": pull["id"],
                "number": number,
                "html_url": pull["html_url"],
                "state": "closed",
                "head": pull["head"],
                "base": pull["base"],
                "closed_at": at,
                "merged": merged,
                "merged_at": at if merged else None,
                "merged_by": user if merged else None,
            },
            "repository": {"full_name": pull["repo"]},
            "sender": user,
        }

    def review_comment_event(
        self,
        number: int,
        comment_id: int,
        *,
        by: str = "rev-alice",
        body: str = "Rename this",
        path: str = "app.py",
        line: int = 2,
        user_id: int = 6021,
        user_type: str = "User",
    ) -> dict[str, Any]:
        """``pull_request_review_comment`` ``created``: an inline comment on the diff."""
        pull = self.opened[number]
        user = {"login": by, "id": user_id, "type": user_type}
        return {
            "action": "created",
            "comment": {
                "id": comment_id, "pull_request_review_id": 880, "path": path, "line": line,
                "original_line": line, "side": "RIGHT", "body": body, "user": user,
                "diff_hunk": "@@ -1,2 +1,5 @@\n def total(xs):\n     return sum(xs) / len(xs)",
                "created_at": "2026-03-02T15:40:51Z",
                "html_url": f"{pull['html_url']}#r{comment_id}",
            },
            "pull_request": {"id": pull["id"], "number": number, "head": pull["head"],
                             "base": pull["base"]},
            "repository": {"full_name": pull["repo"]},
            "sender": user,
        }  # fmt: skip

    def review_event(
        self,
        number: int,
        review_id: int,
        *,
        by: str = "rev-alice",
        body: str = "",
        state: str = "commented",
    ) -> dict[str, Any]:
        """``pull_request_review`` ``submitted``."""
        pull = self.opened[number]
        user = {"login": by, "id": 6021, "type": "User"}
        return {
            "action": "submitted",
            "review": {"id": review_id, "body": body or None, "state": state, "user": user,
                       "submitted_at": "2026-03-02T15:40:51Z"},
            "pull_request": {"id": pull["id"], "number": number},
            "repository": {"full_name": pull["repo"]},
            "sender": user,
        }  # fmt: skip

    def pr_comment_event(
        self, number: int, comment_id: int, body: str, *, by: str = "rev-alice"
    ) -> dict[str, Any]:
        """``issue_comment`` ``created`` on the pull request (GitHub's issue view of it)."""
        pull = self.opened[number]
        user = {"login": by, "id": 6021, "type": "User"}
        return {
            "action": "created",
            "issue": {"number": number, "pull_request": {"url": pull["html_url"]}},
            "comment": {"id": comment_id, "body": body, "user": user,
                        "created_at": "2026-03-02T15:40:51Z"},
            "repository": {"full_name": pull["repo"]},
            "sender": user,
        }  # fmt: skip


def _links(url: str, page: int, last: int, per_page: int) -> dict[str, str]:
    """GitHub's ``Link`` header: ``next`` and ``last`` while pages follow, as the API sends."""
    if page >= last:
        return {}
    parts = [(page + 1, "next"), (last, "last")]
    return {
        "link": ", ".join(f'<{url}?per_page={per_page}&page={n}>; rel="{rel}"' for n, rel in parts)
    }
