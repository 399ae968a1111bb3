"""A local stand-in for Linear's GraphQL API (comments of issues), recording every request.

One endpoint, ``POST /graphql``, taking ``{"query", "variables"}`` with the API key in
``Authorization`` (no ``Bearer``). It knows the three operations hookagent sends and answers
as Linear does: ``{"data": …}``, or ``{"errors": [...]}`` (HTTP 400 for a bad request, 200
with ``data: null`` for an unknown entity).
"""

from __future__ import annotations

import json
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.stub_server import LocalServer

BOT = {"id": "b0b0b0b0-0000-4000-8000-0000000000b0", "name": "hookagent"}

Answer = tuple[int, Any]


class LinearStub(LocalServer):
    """``commentCreate``, ``commentUpdate``, ``issue(id) { description comments }``, ``viewer``."""

    KEY = "lin_api_stub0123456789abcdefghijklmnopqrstuv"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        # Issue id → its description and comments (Linear's Comment fields), oldest first.
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, dict[str, Any]] = {}  # comment id → the comment
        self.fail_with: Answer | None = None  # answered to every authorised request when set
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length)) if length else {}
                with stub.changed:
                    stub.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status, payload = (
                        401,
                        {
                            "errors": [
                                {
                                    "message": "Authentication required",
                                    "extensions": {"code": "AUTHENTICATION_ERROR"},
                                }
                            ]
                        },
                    )
                    if self.path == "/graphql" and self.headers.get("Authorization") == stub.KEY:
                        status, payload = stub.answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                stub.notify()

        super().__init__(Handler)

    @property
    def api_url(self) -> str:
        """What ``HOOKAGENT_LINEAR_API_URL`` is set to."""
        return f"{self.url}/graphql"

    def issue(self, issue_id: str, description: str = "") -> dict[str, Any]:
        """The issue ``issue_id``, created empty the first time."""
        return self.issues.setdefault(
            issue_id,
            {"id": issue_id, "identifier": "ENG-412", "description": description, "comments": []},
        )

    def answer(self, body: Any) -> Answer:
        """What Linear would answer (called with the lock held)."""
        if self.fail_with is not None:
            return self.fail_with
        query = str(body.get("query", "")) if isinstance(body, dict) else ""
        variables = (body.get("variables") or {}) if isinstance(body, dict) else {}
        if "commentCreate(" in query:
            return self._create(str(variables["issueId"]), str(variables["body"]))
        if "commentUpdate(" in query:
            return self._update(str(variables["id"]), str(variables["body"]))
        if "viewer" in query:
            return 200, {"data": {"viewer": dict(BOT)}}
        if "issue(id:" in query:
            return self._read_thread(str(variables["id"]), variables)
        return 400, {
            "errors": [
                {
                    "message": "Unknown operation",
                    "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                }
            ]
        }

    def _create(self, issue_id: str, text: str) -> Answer:
        comment: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "body": text,
            "createdAt": "2026-11-26T10:00:00.000Z",
            "user": BOT,
            "botActor": None,
            "issueId": issue_id,
        }
        self.comments[comment["id"]] = comment
        self.issue(issue_id)["comments"].append(comment)
        data = {"commentCreate": {"success": True, "comment": {"id": comment["id"]}}}
        return 200, {"data": data}

    def _update(self, comment_id: str, text: str) -> Answer:
        comment = self.comments.get(comment_id)
        if comment is None:
            return 200, {
                "data": None,
                "errors": [
                    {
                        "message": "Entity not found: Comment",
                        "extensions": {"code": "INVALID_INPUT"},
                    }
                ],
            }
        comment["body"] = text
        return 200, {"data": {"commentUpdate": {"success": True, "comment": {"id": comment_id}}}}

    def _read_thread(self, issue_id: str, variables: dict[str, Any]) -> Answer:
        """Linear's connection order: by ``createdAt`` (its default ``orderBy``), ascending;
        ``first: n`` is the head of it, ``last: n`` the tail (Relay's pagination)."""
        issue = self.issues.get(issue_id)
        if issue is None:
            return 200, {
                "data": None,
                "errors": [
                    {"message": "Entity not found: Issue", "extensions": {"code": "INVALID_INPUT"}}
                ],
            }
        ordered = sorted(issue["comments"], key=lambda c: str(c.get("createdAt")))
        if "last" in variables:
            picked = ordered[-int(variables["last"]) :]
        else:
            picked = ordered[: int(variables.get("first", 50))]
        nodes = [
            {k: c.get(k) for k in ("id", "body", "createdAt", "user", "botActor")} for c in picked
        ]
        data = {
            "identifier": issue["identifier"],
            "description": issue["description"],
            "comments": {"nodes": nodes},
        }
        return 200, {"data": {"issue": data}}

    def writes(self) -> list[dict[str, Any]]:
        """The comment mutations received, in order, as ``{"op", "variables"}``."""
        found = []
        for request in self.requests:
            query = str(request["body"].get("query", ""))
            for op in ("commentCreate", "commentUpdate"):
                if f"{op}(" in query:
                    found.append({"op": op, "variables": request["body"]["variables"]})
        return found
