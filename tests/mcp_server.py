"""A small MCP server over stdio (JSON-RPC 2.0, one message per line), standard library only.

Tool ``lookup`` answers ``found <query>`` and the value of the variable named by its ``env``
argument when given one (how a test sees that a policy's secret reached the server, and that
the log shows it redacted). Tool ``where`` answers whether this process can see ``path``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TOOLS = [
    {
        "name": "lookup",
        "description": "Look a word up in the project's glossary.",
        "inputSchema": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "env": {"type": "string"}},
            "required": ["query"],
        },
    },
    {
        "name": "where",
        "description": "Whether a path exists where this server runs.",
        "inputSchema": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
]


def call(name: str, args: dict[str, Any]) -> str:
    """The text a tool call answers."""
    if name == "where":
        return f"exists={os.path.exists(str(args.get('path', '')))}"
    text = f"found {args.get('query', '')}"
    if args.get("env"):
        text += f" env={os.environ.get(str(args['env']), '(unset)')}"
    return text


def answer(message: dict[str, Any]) -> dict[str, Any] | None:
    """The reply to one request (None for a notification)."""
    if "id" not in message:
        return None
    method, params = message.get("method"), message.get("params") or {}
    result: dict[str, Any]
    if method == "initialize":
        result = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "test-mcp", "version": "1.0"},
        }
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        text = call(str(params.get("name")), params.get("arguments") or {})
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    elif method == "ping":
        result = {}
    else:
        error = {"code": -32601, "message": f"no method {method}"}
        return {"jsonrpc": "2.0", "id": message["id"], "error": error}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


def main() -> None:
    """Serve stdin until it closes."""
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = answer(json.loads(line))
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
