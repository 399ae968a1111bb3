"""What the model API stand-ins share: scripted replies, scripted faults, recorded requests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.stub_server import LocalServer


@dataclass
class Reply:
    """One model answer: ``text``, or a call of ``tool`` with ``arguments``.

    ``arguments`` is a JSON object for a function tool and, for the OpenAI API, the raw
    input string of a freeform tool (Codex's ``apply_patch``). ``namespace``, for the OpenAI
    API: the namespace of a tool a tool search loaded (``mcp__<server>`` for Codex's MCP
    tools), sent beside its ``name``.
    """

    text: str = ""
    tool: str = ""
    arguments: dict[str, Any] | str = field(default_factory=dict)
    namespace: str = ""


@dataclass
class Fault:
    """An HTTP error answer instead of a model answer, carrying the API's error object.

    Status 200 is a stream cut short: its first event, then the connection closes before
    the stream's end (what a dropped connection looks like to the client). ``retry_after``:
    the seconds sent in a ``Retry-After`` header (a 429's, say), when set.
    """

    status: int
    message: str = ""
    retry_after: int | None = None


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of access-log lines."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        return


class ScriptedStub(LocalServer):
    """A model API on 127.0.0.1 answering from a script; records every request."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.replies: list[Reply] = [Reply(text="hookagent stub")]
        # Other scripts, chosen when their marker appears in the conversation's user text.
        self.when: dict[str, list[Reply]] = {}
        # Answered in order, one per model request, before any scripted reply (None: the
        # scripted reply).
        self.faults: list[Fault | None] = []
        self.requests: list[dict[str, Any]] = []
        super().__init__(handler)

    def script(
        self,
        replies: list[Reply],
        *,
        when: dict[str, list[Reply]] | None = None,
        faults: list[Fault | None] | None = None,
    ) -> None:
        """Answer the next conversations with ``replies`` (and ``when``), after ``faults``."""
        self.replies, self.when, self.faults = replies, when or {}, faults or []
        self.requests.clear()

    def record(self, handler: BaseHTTPRequestHandler) -> dict[str, Any]:
        """Read, record (header names in lower case) and return one request's JSON body."""
        raw = handler.rfile.read(int(handler.headers.get("content-length", 0)))
        body: dict[str, Any] = json.loads(raw or b"{}")
        headers = {name.lower(): value for name, value in handler.headers.items()}
        self.requests.append({"path": handler.path, "headers": headers, "body": body})
        self.notify()
        return body

    def next_fault(self) -> Fault | None:
        """The next scripted fault, consumed; None once they are all answered."""
        return self.faults.pop(0) if self.faults else None

    def pick(self, said: str, answered: int) -> Reply:
        """The reply after ``answered`` tool results, in the script ``said`` selects."""
        replies = next((r for marker, r in self.when.items() if marker in said), self.replies)
        return replies[min(answered, len(replies) - 1)]


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: dict[str, Any],
    *,
    retry_after: int | None = None,
) -> None:
    """Answer with a JSON body (and a ``Retry-After`` header when given)."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json; charset=utf-8")
    if retry_after is not None:
        handler.send_header("retry-after", str(retry_after))
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
