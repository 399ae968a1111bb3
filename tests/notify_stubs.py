"""Local stand-ins for Slack (Web API and incoming webhooks), Jira and webhook receivers.

Each records what it receives and wakes waiters (``wait_for``) after every request. Answers
can be scripted: ``script`` maps a path to a queue of (status, headers) answers used before
the normal one, e.g. a 429 with ``Retry-After: 1`` and then the real answer. ``hold`` makes
a request wait in the stub until released, to stop a notifier mid-delivery.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from tests.stub_server import LocalServer

Answer = tuple[int, dict[str, str]]
JIRA_TRANSITIONS = ({"id": "21", "name": "In Progress"}, {"id": "31", "name": "In Review"})


class RecordingStub(LocalServer):
    """Records every request (method, path, headers, raw and parsed body) and its answer."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: dict[str, list[Answer]] = defaultdict(list)
        self.hold: threading.Event | None = None
        self.held = threading.Event()  # set once a request is waiting on ``hold``
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

            def do_GET(self) -> None:
                stub.serve(self, "GET")

            def do_POST(self) -> None:
                stub.serve(self, "POST")

            def do_PUT(self) -> None:
                stub.serve(self, "PUT")

        super().__init__(Handler)

    def serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        """Record, answer (scripted first), then wake the waiters."""
        raw = handler.rfile.read(int(handler.headers.get("content-length", 0)))
        path = handler.path.split("?")[0]
        hold = self.hold
        if hold is not None and method != "GET":
            self.hold = None  # only the first request is held
            self.held.set()
            hold.wait(30)
        with self.changed:
            scripted = self.script[path].pop(0) if self.script[path] else None
            if scripted is not None:
                status, headers = scripted
                payload: Any = {"ok": False, "error": "scripted"}
            else:
                status, headers = 200, {}
                payload = self.reply(method, path, _parse(raw, handler.headers))
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "headers": {k.lower(): v for k, v in handler.headers.items()},
                    "raw": raw,
                    "body": _parse(raw, handler.headers),
                    "status": status,
                    "at": time.monotonic(),
                }
            )
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        ctype = "text/plain" if isinstance(payload, bytes) else "application/json"
        handler.send_header("content-type", f"{ctype}; charset=utf-8")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(data)))
        try:
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client died mid-request (a killed notifier)
        self.notify()

    def reply(self, method: str, path: str, body: Any) -> Any:
        """The normal answer (called with the lock held); JSON unless bytes."""
        return b"ok"

    def accepted(self, path: str | None = None) -> list[dict[str, Any]]:
        """Requests answered 2xx (to ``path`` if given)."""
        return [
            r
            for r in self.requests
            if 200 <= r["status"] < 300 and (path is None or r["path"] == path)
        ]


def _parse(raw: bytes, headers: Any) -> Any:
    ctype = str(headers.get("content-type", ""))
    if "application/x-www-form-urlencoded" in ctype:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        # The Web API accepts blocks as a JSON string in form bodies.
        if "blocks" in form:
            form["blocks"] = json.loads(form["blocks"])
        return form
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


class SlackStub(RecordingStub):
    """``/api/chat.postMessage``, ``/api/chat.update``, ``/api/views.open`` in Slack's wire
    format (``{"ok": true, "ts": …, "channel": …}``), and an incoming webhook at ``/hook``."""

    CHANNEL_ID = "C0AGENTS"
    TOKEN = "xoxb-1234567890-test-token-abcdefghij"

    def __init__(self) -> None:
        super().__init__()
        self._ts = 0

    @property
    def api_url(self) -> str:
        """``HOOKAGENT_SLACK_API_URL``."""
        return f"{self.url}/api/"

    @property
    def hook_url(self) -> str:
        """``HOOKAGENT_SLACK_WEBHOOK_URL``."""
        return f"{self.url}/hook/T0/B0/secretpart"

    def reply(self, method: str, path: str, body: Any) -> Any:
        """Slack's answers (tests check the bearer token on the recorded headers)."""
        if path.startswith("/hook/"):
            return b"ok"
        if path in ("/api/chat.postMessage", "/api/chat.update"):
            if path.endswith("postMessage"):
                self._ts += 1
                ts = f"1764040001.{self._ts:06d}"
            else:
                ts = body["ts"]
            return {"ok": True, "channel": self.CHANNEL_ID, "ts": ts, "message": {"text": ""}}
        if path == "/api/views.open":
            return {"ok": True, "view": {"id": "V0MODAL", **body["view"]}}
        return {"ok": False, "error": "unknown_method"}

    def calls(self, method: str) -> list[dict[str, Any]]:
        """Accepted calls of a Web API method, e.g. ``chat.update``, their bodies in order."""
        return [r["body"] for r in self.accepted(f"/api/{method}")]

    def texts(self, method: str) -> list[str]:
        """Every call's blocks rendered as one string, to search."""
        return [json.dumps(body) for body in self.calls(method)]


class JiraStub(RecordingStub):
    """``POST /rest/api/2/issue/{key}/comment`` → 201-ish with an id, ``PUT`` edits it,
    ``GET``/``POST …/transitions``."""

    def __init__(self) -> None:
        super().__init__()
        self.comments: dict[str, str] = {}

    def reply(self, method: str, path: str, body: Any) -> Any:
        """Jira's answers (all 200 here; the client accepts any 2xx)."""
        if path.endswith("/transitions"):
            return {"transitions": JIRA_TRANSITIONS} if method == "GET" else {}
        if method == "POST" and path.endswith("/comment"):
            comment_id = str(10000 + len(self.comments))
            self.comments[comment_id] = body["body"]
            return {"id": comment_id, "body": body["body"]}
        if method == "PUT" and "/comment/" in path:
            comment_id = path.rsplit("/", 1)[1]
            self.comments[comment_id] = body["body"]
            return {"id": comment_id, "body": body["body"]}
        return {"errorMessages": ["not found"]}
