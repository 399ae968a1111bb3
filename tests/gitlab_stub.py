"""A local stand-in for the GitLab REST API v4 (merge requests, notes), recording requests.

Projects are addressed as GitLab does, by the URL-encoded ``path_with_namespace``; every
request needs the ``PRIVATE-TOKEN`` header, and notes are listed a page at a time with
GitLab's ``X-Next-Page`` headers.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.stub_server import LocalServer

WEB = "https://gitlab.example.com"
BOT = {"id": 99, "username": "hookagent-bot", "name": "hookagent", "state": "active"}

Answer = tuple[int, Any, dict[str, str]]


class GitLabStub(LocalServer):
    """``/api/v4/projects/:id/{merge_requests, issues/:iid/notes[/:note_id]}``."""

    TOKEN = "glpat-stub-0123456789abcdef"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: Answer | None = None
        self.notes: dict[int, dict[str, Any]] = {}  # note id → the note as GitLab stores it
        self.merge_requests: list[dict[str, Any]] = []
        # Notes written on merge requests: general ones and replies in a discussion.
        self.mr_notes: list[dict[str, Any]] = []
        # Merge requests hookagent did not open (``GET …/merge_requests/:iid``), and the
        # discussions started on them.
        self.mr_info: dict[int, dict[str, Any]] = {}
        self.discussions: list[dict[str, Any]] = []
        # Failed jobs per pipeline id, and each job's trace (its log) by job id.
        self.failed_jobs: dict[int, list[dict[str, Any]]] = {}
        self.traces: dict[int, str] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length)) if length else None
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with stub.changed:
                    stub.requests.append(
                        {"method": method, "path": parts.path, "query": query,
                         "headers": dict(self.headers), "body": body}
                    )  # fmt: skip
                    answer: Answer = (401, {"message": "401 Unauthorized"}, {})
                    if self.headers.get("PRIVATE-TOKEN") == stub.TOKEN:
                        answer = stub.answer(method, parts.path, query, body)
                    status, payload, headers = answer
                self._send(status, payload, headers)
                stub.notify()

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                raw = isinstance(payload, bytes)  # a job's trace: plain text
                data = payload if raw else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain" if raw else "application/json")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)

    @property
    def api_url(self) -> str:
        """What ``HOOKAGENT_GITLAB_API_URL`` is set to."""
        return f"{self.url}/api/v4"

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        """What GitLab would answer (called with the lock held)."""
        if self.fail_with is not None:
            return self.fail_with
        prefix = "/api/v4/projects/"
        if not path.startswith(prefix):
            return 404, {"error": "404 Not Found"}, {}
        # The project id is one segment: a path's "/" arrive as %2F.
        encoded, _, rest = path.removeprefix(prefix).partition("/")
        project, parts = unquote(encoded), rest.split("/")
        if method == "POST" and parts == ["merge_requests"]:
            return self._merge_request(project, body)
        if len(parts) >= 2 and parts[0] == "merge_requests" and parts[1] in map(str, self.mr_info):
            return self._merge_request_of(method, int(parts[1]), parts[2:], body)
        if method == "POST" and len(parts) >= 3 and parts[0] == "merge_requests":
            return self._merge_request_note(int(parts[1]), parts[2:], body)
        if method == "GET" and len(parts) == 3 and parts[0] == "pipelines" and parts[2] == "jobs":
            jobs = self.failed_jobs.get(int(parts[1]), [])
            return 200, jobs if query.get("scope[]") == "failed" else [], {}
        if method == "GET" and len(parts) == 3 and parts[0] == "jobs" and parts[2] == "trace":
            trace = self.traces.get(int(parts[1]))
            return (200, trace.encode(), {}) if trace is not None else (404, {}, {})
        if len(parts) >= 3 and parts[0] == "issues" and parts[2] == "notes":
            return self._notes(method, int(parts[1]), parts[3:], query, body)
        return 404, {"message": "404 Not Found"}, {}

    def _merge_request(self, project: str, body: dict[str, Any]) -> Answer:
        for open_mr in self.merge_requests:
            if open_mr["source_branch"] == body["source_branch"]:
                message = "Another open merge request already exists for this source branch"
                return 409, {"message": [f"{message}: !{open_mr['iid']}"]}, {}
        iid = len(self.merge_requests) + 1
        merge_request = {
            "id": 7000 + iid, "iid": iid, "project_id": 1207, "title": body["title"],
            "description": body.get("description"), "state": "opened",
            "source_branch": body["source_branch"], "target_branch": body["target_branch"],
            "web_url": f"{WEB}/{project}/-/merge_requests/{iid}", "author": BOT,
        }  # fmt: skip
        self.merge_requests.append(merge_request)
        return 201, merge_request, {}

    def _merge_request_of(self, method: str, iid: int, rest: list[str], body: Any) -> Answer:
        """``GET …/merge_requests/:iid`` and ``POST …/merge_requests/:iid/discussions``."""
        request = self.mr_info[iid]
        if method == "GET" and not rest:
            return 200, request, {}
        if method == "POST" and rest == ["discussions"]:
            position = body.get("position")
            if (
                position is not None
                and position.get("head_sha") != request["diff_refs"]["head_sha"]
            ):
                return (
                    400,
                    {"message": '400 Bad request - Note {:line_code=>["can\'t be blank"]}'},
                    {},
                )
            discussion = {"id": f"d{len(self.discussions)}", "individual_note": False,
                          "notes": [{"id": 1914000 + len(self.discussions), "body": body["body"],
                                     "position": position, "author": BOT}]}  # fmt: skip
            self.discussions.append(discussion | {"iid": iid})
            return 201, discussion, {}
        return 404, {"message": "404 Not Found"}, {}

    def _notes(
        self, method: str, iid: int, rest: list[str], query: dict[str, str], body: Any
    ) -> Answer:
        if method == "POST" and not rest:
            note_id = 1913500 + len(self.notes)
            self.notes[note_id] = {
                "id": note_id, "type": None, "body": body["body"], "author": BOT,
                "system": False, "noteable_type": "Issue", "noteable_iid": iid,
                "resolvable": False, "confidential": False, "internal": False,
            }  # fmt: skip
            return 201, self.notes[note_id], {}
        if method == "PUT" and len(rest) == 1:
            note = self.notes.get(int(rest[0]))
            if note is None or note["noteable_iid"] != iid:
                return 404, {"message": "404 Not found"}, {}
            note["body"] = body["body"]
            return 200, note, {}
        if method == "GET" and not rest:
            notes = [n for _, n in sorted(self.notes.items()) if n["noteable_iid"] == iid]
            page, per_page = int(query.get("page", "1")), int(query.get("per_page", "20"))
            rows = notes[(page - 1) * per_page : page * per_page]
            more = page * per_page < len(notes)
            headers = {
                "X-Page": str(page),
                "X-Per-Page": str(per_page),
                "X-Total": str(len(notes)),
                "X-Next-Page": str(page + 1) if more else "",
            }
            return 200, rows, headers
        return 404, {"message": "404 Not Found"}, {}

    def _merge_request_note(self, iid: int, rest: list[str], body: Any) -> Answer:
        """``…/merge_requests/:iid/notes``, ``…/discussions/:discussion_id/notes``: recorded."""
        if rest != ["notes"] and not (len(rest) == 3 and rest[0] == "discussions"):
            return 404, {"message": "404 Not Found"}, {}
        note_id = 1923500 + len(self.mr_notes)
        discussion = rest[1] if len(rest) == 3 else None
        note = {
            "id": note_id, "type": "DiscussionNote" if discussion else None,
            "body": body["body"], "author": BOT, "system": False,
            "noteable_type": "MergeRequest", "noteable_iid": iid, "discussion_id": discussion,
        }  # fmt: skip
        self.mr_notes.append(note)
        return 201, note, {}

    def note_requests(self) -> list[dict[str, Any]]:
        """The note writes (POST, PUT) received, in order."""
        return [r for r in self.requests if "/notes" in r["path"] and r["method"] != "GET"]
