"""A local stand-in for Sentry's REST API: an issue's latest event, recording every request.

Both paths Sentry serves it on (``/api/0/issues/{id}/events/latest/`` and the organisation's
``/api/0/organizations/{org}/issues/{id}/events/latest/``), behind a bearer token; the event
is in the API's shape: ``entries`` of type ``exception`` and ``breadcrumbs``, camelCase frames.
"""

from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.stub_server import LocalServer

_LATEST = re.compile(r"^/api/0/(?:organizations/[\w.-]+/)?issues/(\w+)/events/latest/$")


def api_event(issue_id: str) -> dict[str, Any]:
    """An event as ``GET …/events/latest/`` returns it (trimmed to the fields that matter)."""
    frames = [
        {"absPath": "/usr/lib/python3.11/site-packages/flask/app.py", "filename": "flask/app.py",
         "function": "full_dispatch_request", "lineNo": 880, "inApp": False, "context": [],
         "module": "flask.app", "vars": {}},
        {"absPath": "/srv/app/reports/monthly.py", "filename": "app/reports/monthly.py",
         "function": "average_order_value", "lineNo": 42, "inApp": True, "module": "app.reports",
         "context": [[41, "    orders = fetch(month)"], [42, "    return total / len(orders)"]],
         "vars": {"total": "0"}},
    ]  # fmt: skip
    crumbs = [
        {"timestamp": "2026-11-20T09:59:58.000Z", "type": "http", "category": "httplib",
         "level": "info", "message": None,
         "data": {"method": "GET", "url": "https://db.internal/orders", "status_code": 200}},
        {"timestamp": "2026-11-20T09:59:59.000Z", "type": "default", "category": "query",
         "level": "info", "message": "SELECT * FROM orders WHERE month = %s", "data": None},
    ]  # fmt: skip
    exception = {"type": "ZeroDivisionError", "value": "division by zero", "module": None,
                 "mechanism": {"type": "generic", "handled": False},
                 "stacktrace": {"frames": frames, "hasSystemFrames": True}}  # fmt: skip
    return {
        "id": "9999aaafcc8b46d797c23c6077c6ff01", "groupID": issue_id, "platform": "python",
        "eventID": "9999aaafcc8b46d797c23c6077c6ff01",
        "title": "ZeroDivisionError: division by zero",
        "entries": [
            {"type": "message", "data": {"formatted": "division by zero"}},
            {"type": "exception", "data": {"values": [exception], "hasSystemFrames": True}},
            {"type": "breadcrumbs", "data": {"values": crumbs}},
        ],
        "tags": [{"key": "environment", "value": "production"}],
    }  # fmt: skip


class SentryStub(LocalServer):
    """``GET …/issues/{id}/events/latest/`` for the issues in ``events``."""

    TOKEN = "sntryu_stub_0123456789abcdef0123456789abcdef"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.events: dict[str, dict[str, Any]] = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

            def do_GET(self) -> None:
                with stub.changed:
                    stub.requests.append({"path": self.path, "headers": dict(self.headers)})
                    status, payload = 401, {"detail": "Invalid token"}
                    if self.headers.get("Authorization") == f"Bearer {stub.TOKEN}":
                        status, payload = stub.answer(self.path)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                stub.notify()

        super().__init__(Handler)

    def answer(self, path: str) -> tuple[int, Any]:
        """What Sentry would answer (called with the lock held)."""
        match = _LATEST.match(path)
        event = self.events.get(match.group(1)) if match else None
        if event is None:
            return 404, {"detail": "The requested resource does not exist"}
        return 200, event
