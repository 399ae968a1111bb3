"""A local stand-in for the OpenAI Responses API, speaking its real SSE wire format.

The Codex CLI cannot reach OpenAI from CI; pointed here by a ``[model_providers.<name>]``
entry with ``wire_api = "responses"`` it runs for real: it posts ``/v1/responses`` with
``stream: true`` and this stub answers with ``response.created``,
``response.output_item.added``, the text or tool-input deltas, ``response.output_item.done``
and ``response.completed``. Each answer is chosen by how many tool outputs the conversation
already holds; scripted faults come first.

Codex 0.169 offers a model no MCP tool up front, only ``tool_search`` (``execution:
"client"``): a ``Reply`` of ``TOOL_SEARCH`` is the model's ``tool_search_call``, which the
CLI answers with a ``tool_search_output`` listing the matching tools as namespaces
(``mcp__<server>``); the model then calls one by ``name`` and ``namespace``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.model_stub import Fault, QuietHandler, Reply, ScriptedStub, send_json

__all__ = ["TOOL_SEARCH", "Fault", "Reply", "ResponsesStub"]

# The tool a reply names to search the client's deferred tools (its ``arguments``: a query).
TOOL_SEARCH = "tool_search"
# The items a conversation holds for the model's tool calls, one per tool kind.
_OUTPUTS = ("function_call_output", "custom_tool_call_output", "tool_search_output")


class ResponsesStub(ScriptedStub):
    """Serves ``POST /v1/responses`` from the script on 127.0.0.1."""

    def __init__(self) -> None:
        stub = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = stub.record(self)
                if not self.path.endswith("/responses"):
                    _error(self, Fault(404, f"Invalid URL (POST {self.path})"))
                    return
                fault = stub.next_fault()
                if fault is not None and fault.status != 200:
                    _error(self, fault)
                    return
                reply = stub.reply_for(body) if fault is None else Reply(text=fault.message)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("cache-control", "no-cache")
                self.send_header("x-request-id", f"req_{uuid.uuid4().hex}")
                self.end_headers()
                for number, event in enumerate(_events(str(body.get("model", "")), reply)):
                    if fault is not None and number == 1:
                        self.close_connection = True  # cut after response.created
                        return
                    event["sequence_number"] = number
                    frame = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
                    self.wfile.write(frame.encode())
                    self.wfile.flush()

            def do_GET(self) -> None:
                _error(self, Fault(404, f"Invalid URL (GET {self.path})"))

        super().__init__(Handler)

    def reply_for(self, body: dict[str, Any]) -> Reply:
        """The scripted reply for this point of the conversation."""
        items = [i for i in body.get("input", []) if isinstance(i, dict)]
        answered = sum(1 for i in items if i.get("type") in _OUTPUTS)
        reply = self.pick(json.dumps([i for i in items if i.get("role") == "user"]), answered)
        # A model can call only what is in its context: the request's tools (a tool search
        # by its type) or what a tool search returned. Codex itself would run the call
        # anyway, so the stub holds the script to it.
        if reply.namespace:
            offered = self.searched_tools({"body": body}).get(reply.namespace, [])
        else:
            offered = [str(t.get("name", t.get("type"))) for t in body.get("tools", [])]
        if reply.tool and reply.tool not in offered:
            named = f"{reply.namespace}.{reply.tool}" if reply.namespace else reply.tool
            return Reply(text=f"stub: {named} was never offered")
        return reply

    def searched_tools(self, request: dict[str, Any]) -> dict[str, list[str]]:
        """The tools the client's tool searches returned by one request: namespace -> names."""
        found: dict[str, list[str]] = {}
        for item in request["body"].get("input", []):
            if isinstance(item, dict) and item.get("type") == "tool_search_output":
                for space in item.get("tools", []):
                    names = [str(tool.get("name")) for tool in space.get("tools", [])]
                    found.setdefault(str(space.get("name")), []).extend(names)
        return found

    def user_text(self, request: dict[str, Any]) -> str:
        """Every user message's text in one recorded request."""
        return "\n".join(
            str(part.get("text", ""))
            for item in request["body"].get("input", [])
            if isinstance(item, dict) and item.get("role") == "user"
            for part in item.get("content", [])
            if isinstance(part, dict)
        )


def _error(handler: BaseHTTPRequestHandler, fault: Fault) -> None:
    kind = "server_error" if fault.status >= 500 else "invalid_request_error"
    error = {"message": fault.message, "type": kind, "param": None, "code": None}
    send_json(handler, fault.status, {"error": error}, retry_after=fault.retry_after)


def _events(model: str, reply: Reply) -> Iterator[dict[str, Any]]:
    response: dict[str, Any] = {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "in_progress",
        "model": model,
        "output": [],
        "usage": None,
    }
    yield {"type": "response.created", "response": response}
    yield {"type": "response.in_progress", "response": response}
    item = _item(reply)
    yield from _item_events(item)
    usage = {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 150,
    }
    done = {**response, "status": "completed", "output": [item], "usage": usage}
    yield {"type": "response.completed", "response": done}


def _item(reply: Reply) -> dict[str, Any]:
    call_id = f"call_{uuid.uuid4().hex[:24]}"
    if reply.tool == TOOL_SEARCH:
        # The arguments are a JSON object here, not a string as a function call's are.
        return {
            "type": "tool_search_call",
            "id": f"tsc_{uuid.uuid4().hex}",
            "status": "completed",
            "execution": "client",
            "call_id": call_id,
            "arguments": reply.arguments,
        }
    if reply.tool and isinstance(reply.arguments, str):
        return {
            "type": "custom_tool_call",
            "id": f"ctc_{uuid.uuid4().hex}",
            "status": "completed",
            "call_id": call_id,
            "name": reply.tool,
            "input": reply.arguments,
        }
    if reply.tool:
        return {
            "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex}",
            "status": "completed",
            "call_id": call_id,
            "name": reply.tool,
            "arguments": json.dumps(reply.arguments),
            **({"namespace": reply.namespace} if reply.namespace else {}),
        }
    text = {"type": "output_text", "text": reply.text, "annotations": []}
    return {
        "type": "message",
        "id": f"msg_{uuid.uuid4().hex}",
        "status": "completed",
        "role": "assistant",
        "content": [text],
    }


def _item_events(item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``output_item.added``, the deltas the real API streams, ``output_item.done``."""
    where = {"output_index": 0, "item_id": item["id"]}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        opened = {**item, "status": "in_progress", "content": []}
        yield {"type": "response.output_item.added", "output_index": 0, "item": opened}
        part = {"type": "output_text", "text": "", "annotations": []}
        at = {**where, "content_index": 0}
        yield {"type": "response.content_part.added", **at, "part": part}
        yield {"type": "response.output_text.delta", **at, "delta": text}
        yield {"type": "response.output_text.done", **at, "text": text}
        yield {"type": "response.content_part.done", **at, "part": {**part, "text": text}}
    elif item["type"] == "tool_search_call":
        opened = {**item, "status": "in_progress"}
        yield {"type": "response.output_item.added", "output_index": 0, "item": opened}
    else:
        custom = item["type"] == "custom_tool_call"
        name = "input" if custom else "arguments"
        opened = {**item, "status": "in_progress", name: ""}
        yield {"type": "response.output_item.added", "output_index": 0, "item": opened}
        delta = "custom_tool_call_input" if custom else "function_call_arguments"
        yield {"type": f"response.{delta}.delta", **where, "delta": item[name]}
        yield {"type": f"response.{delta}.done", **where, name: item[name]}
    yield {"type": "response.output_item.done", "output_index": 0, "item": item}
