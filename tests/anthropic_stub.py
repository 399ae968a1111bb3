"""A local stand-in for the Anthropic Messages API, speaking its real SSE wire format.

The Claude Code CLI cannot reach Anthropic from CI; pointed here with ANTHROPIC_BASE_URL it
runs for real: it posts ``/v1/messages?beta=true`` with ``stream: true`` and this stub
answers with ``message_start``, ``content_block_*``, ``message_delta`` and ``message_stop``.
Each answer is chosen by how many assistant turns the conversation already holds; scripted
faults (a 429 with ``Retry-After``, a 529 overload) answer the conversation's requests first.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.model_stub import Fault, send_json
from tests.stub_server import LocalServer

# The Messages API's error type for each status a fault may carry.
_ERROR_TYPES = {429: "rate_limit_error", 529: "overloaded_error", 500: "api_error"}


@dataclass
class Turn:
    """One assistant reply: text, or a tool call (``tool`` name with ``tool_input``)."""

    text: str = ""
    tool: str = ""
    tool_input: dict[str, Any] = field(default_factory=dict)


class MessagesStub(LocalServer):
    """Serves a scripted conversation on 127.0.0.1; records every request body."""

    def __init__(
        self,
        turns: list[Turn],
        *,
        when: dict[str, list[Turn]] | None = None,
        faults: list[Fault | None] | None = None,
    ) -> None:
        self.turns = turns
        # Other scripts, chosen when their marker appears in the conversation's first message.
        self.when = when or {}
        # Answered in order, one per conversation request (one with tools), before any turn;
        # None lets that request through to the script.
        self.faults = faults or []
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

            def do_POST(self) -> None:
                body = json.loads(
                    self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}"
                )
                stub.requests.append({"path": self.path, "body": body})
                stub.notify()
                if not self.path.startswith("/v1/messages") or "count_tokens" in self.path:
                    self._json(
                        404,
                        {
                            "type": "error",
                            "error": {"type": "not_found_error", "message": self.path},
                        },
                    )
                    return
                fault = stub.faults.pop(0) if body.get("tools") and stub.faults else None
                if fault is not None:
                    kind = _ERROR_TYPES.get(fault.status, "api_error")
                    error = {"type": "error", "error": {"type": kind, "message": fault.message}}
                    send_json(self, fault.status, error, retry_after=fault.retry_after)
                    return
                self._stream(body, stub.reply_for(body))

            def do_GET(self) -> None:
                self._json(
                    404,
                    {"type": "error", "error": {"type": "not_found_error", "message": self.path}},
                )

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], turn: Turn) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("request-id", f"req_{uuid.uuid4().hex[:20]}")
                self.end_headers()
                for event, data in _events(body.get("model", "claude-sonnet-4-5"), turn):
                    self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                    self.wfile.flush()

        super().__init__(Handler)

    def reply_for(self, body: dict[str, Any]) -> Turn:
        """The scripted turn for this point of the conversation (side requests get text)."""
        if not body.get("tools"):
            return Turn(text="hookagent stub")
        messages = body.get("messages", [])
        done = sum(1 for m in messages if m.get("role") == "assistant")
        opening = json.dumps(messages[0].get("content")) if messages else ""
        turns = next((t for marker, t in self.when.items() if marker in opening), self.turns)
        return turns[min(done, len(turns) - 1)]


def _events(model: str, turn: Turn) -> list[tuple[str, dict[str, Any]]]:
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1},
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": message})
    ]
    if turn.tool:
        block = {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:24]}",
            "name": turn.tool,
            "input": {},
        }
        delta = {"type": "input_json_delta", "partial_json": json.dumps(turn.tool_input)}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": turn.text}
        stop = "end_turn"
    events += [
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        ),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 12},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events
