"""A task's log lines as people read them: a page, ``logs -f`` over SSE, search hits."""

from __future__ import annotations

import argparse
import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from hookagent.cli.api_client import auth_headers, get, request, sse_events
from hookagent.cli.output import console, print_json
from hookagent.errors import HookagentError

STYLES = {"stdout": "", "stderr": "red", "system": "cyan"}
KIND_STYLES = {
    "tool_use": "yellow",
    "tool_result": "dim",
    "error": "bold red",
    "status": "bold cyan",
}


_DURATION = re.compile(r"^(\d+)([smhd])$")


def since_to_iso(value: str) -> str:
    """``10m``/``2h``/``1d`` ago, or an ISO time, as the timestamp entries are compared with."""
    match = _DURATION.match(value.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        moment = datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise HookagentError(
                f"--since takes 10m, 2h, 1d or an ISO time, not {value!r}"
            ) from None
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def render(console: Console, entry: dict[str, Any], *, as_json: bool) -> None:
    """One entry: a JSON line, or a coloured line for people."""
    if as_json:
        console.file.write(json.dumps(entry, ensure_ascii=False) + "\n")
        console.file.flush()
        return
    style = KIND_STYLES.get(entry.get("kind") or "", STYLES.get(entry.get("stream", ""), ""))
    line = f"[dim]{entry['seq']:>6} {entry['timestamp']}[/] {escape(entry['message'])}"
    console.print(f"[{style}]{line}[/]" if style else line)


def logs(args: argparse.Namespace) -> int:
    """A page of log lines, or ``-f`` to follow live."""
    if args.follow:
        return follow(args)
    params: dict[str, Any] = {"offset": args.offset, "limit": args.limit}
    if args.grep:
        params["q"] = args.grep
    if args.tail is not None:
        total = get(args, f"/tasks/{args.task_id}/logs", offset=0, limit=1)["total"]
        params["offset"] = max(0, total - args.tail)
    data = get(args, f"/tasks/{args.task_id}/logs", **params)
    since = since_to_iso(args.since) if args.since else None
    out = console(highlight=False, soft_wrap=True)
    for entry in data["logs"]:
        if not since or entry["timestamp"] >= since:
            render(out, entry, as_json=args.json)
    if data["has_more"] and not args.json:
        out.print(f"[dim]… more from --offset {data['next_offset']}[/]")
    return 0


def follow(args: argparse.Namespace) -> int:
    """``logs -f``: print entries as they arrive until the task ends."""
    out = console(highlight=False, soft_wrap=True)
    params: dict[str, Any] = {}
    if args.grep:
        params["q"] = args.grep
    start: int | None = None
    if args.tail is not None:
        total = get(args, f"/tasks/{args.task_id}/logs", offset=0, limit=1)["total"]
        start = max(0, total - args.tail)
    elif args.offset:
        start = args.offset
    since = since_to_iso(args.since) if args.since else None
    url = f"{args.url.rstrip('/')}/tasks/{args.task_id}/logs/stream"
    # Resuming "after seq start-1" is how SSE says "from start".
    last = start - 1 if start else None
    with httpx.Client(headers=auth_headers(args)) as client:
        for event, data in sse_events(client, url, params, last):
            if event == "end":
                if not args.json:
                    out.print(f"[bold]— task {data.get('status')} —[/]")
                return 0
            if event == "progress" or (since and data.get("timestamp", "") < since):
                continue
            render(out, data, as_json=args.json)
            out.file.flush()  # a reader of the pipe sees each entry as it arrives
    return 0


def search(args: argparse.Namespace) -> int:
    """Print search hits with the matches highlighted."""
    params: dict[str, Any] = {"q": args.query, "limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.since:
        params["since"] = since_to_iso(args.since)
    response = request(args, "GET", "/search", params=params)
    if args.json:
        print_json(response)
        return 0
    data = response.json()
    out = console(highlight=False, soft_wrap=True)
    for hit in data["hits"]:
        line = Text(f"{hit['task_id']} #{hit['seq']} {hit['timestamp']} ", style="dim")
        marked = False
        for part in re.split(r"(</?mark>)", hit["snippet"]):
            if part in ("<mark>", "</mark>"):
                marked = part == "<mark>"
            else:
                line.append(html.unescape(part), style="reverse" if marked else "")
        out.print(line)
    if not data["hits"]:
        out.print("[dim]no matches[/]")
    return 0
