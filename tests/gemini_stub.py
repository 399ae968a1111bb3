"""A local stand-in for the Gemini API, speaking its real SSE wire format.

The Gemini CLI cannot reach Google from CI; pointed here with ``GOOGLE_GEMINI_BASE_URL``
(API-key auth) it runs for real: the conversation goes to
``/v1beta/models/<model>:streamGenerateContent?alt=sse`` and this stub answers with
``data:`` frames of ``GenerateContentResponse`` chunks, the last one carrying
``finishReason``. The CLI's side requests (``:generateContent`` for its JSON helpers,
``:countTokens``) get neutral answers. Each answer is chosen by how many function
responses the conversation already holds; scripted faults come first.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.model_stub import Fault, QuietHandler, Reply, ScriptedStub, send_json

__all__ = ["ConversationStub", "Fault", "Reply"]

_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
_USAGE = {"promptTokenCount": 120, "candidatesTokenCount": 30, "totalTokenCount": 150}


class ConversationStub(ScriptedStub):
    """Serves the Gemini API's ``models/*`` methods from the script on 127.0.0.1."""

    def __init__(self) -> None:
        stub = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = stub.record(self)
                method = self.path.split("?")[0].rpartition(":")[2]
                if method == "countTokens":
                    send_json(self, 200, {"totalTokens": 120})
                elif method == "generateContent":
                    # The CLI's JSON helpers (next speaker, routing): the user speaks next.
                    answer = {"reasoning": "stub", "next_speaker": "user"}
                    send_json(self, 200, _chunk(Reply(text=json.dumps(answer)), final=True))
                elif method == "streamGenerateContent":
                    self._stream(body)
                else:
                    _error(self, Fault(404, f"no method {self.path}"))

            def _stream(self, body: dict[str, Any]) -> None:
                fault = stub.next_fault()
                if fault is not None and fault.status != 200:
                    _error(self, fault)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("x-goog-request-id", uuid.uuid4().hex)
                self.end_headers()
                if fault is not None:
                    # A stream that ends without a finishReason: the CLI retries it.
                    self._frame(_chunk(Reply(text=fault.message), final=False))
                    self.close_connection = True
                    return
                for chunk in _chunks(stub.reply_for(body)):
                    self._frame(chunk)

            def _frame(self, chunk: dict[str, Any]) -> None:
                # The real API frames with CRLF pairs.
                self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                self.wfile.flush()

        super().__init__(Handler)

    def reply_for(self, body: dict[str, Any]) -> Reply:
        """The scripted reply for this point of the conversation."""
        contents = [c for c in body.get("contents", []) if isinstance(c, dict)]
        parts = [p for c in contents for p in c.get("parts", []) if isinstance(p, dict)]
        answered = sum(1 for p in parts if "functionResponse" in p)
        return self.pick(self.user_text(body), answered)

    def conversations(self) -> list[dict[str, Any]]:
        """The recorded bodies of the streamed (conversation) requests."""
        return [r for r in self.requests if ":streamGenerateContent" in r["path"]]

    @staticmethod
    def user_text(body: dict[str, Any]) -> str:
        """Every user text part of one request body."""
        return "\n".join(
            str(part.get("text", ""))
            for content in body.get("contents", [])
            if isinstance(content, dict) and content.get("role") == "user"
            for part in content.get("parts", [])
            if isinstance(part, dict) and "text" in part
        )


def _error(handler: BaseHTTPRequestHandler, fault: Fault) -> None:
    status = _STATUS.get(fault.status, "UNKNOWN")
    send_json(
        handler,
        fault.status,
        {"error": {"code": fault.status, "message": fault.message, "status": status}},
        retry_after=fault.retry_after,
    )


def _chunks(reply: Reply) -> Iterator[dict[str, Any]]:
    """Text in two chunks (the API streams pieces), then the function call, if any."""
    half = len(reply.text) // 2
    if half:
        yield _chunk(Reply(text=reply.text[:half]), final=False)
    if reply.tool:
        yield _chunk(Reply(text=reply.text[half:]), final=False)
        yield _chunk(Reply(tool=reply.tool, arguments=reply.arguments), final=True)
    else:
        yield _chunk(Reply(text=reply.text[half:]), final=True)


def _chunk(reply: Reply, *, final: bool) -> dict[str, Any]:
    part: dict[str, Any] = (
        {"functionCall": {"name": reply.tool, "args": reply.arguments}}
        if reply.tool
        else {"text": reply.text}
    )
    candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": _USAGE,
        "modelVersion": "gemini-stub",
        "responseId": uuid.uuid4().hex[:20],
    }
