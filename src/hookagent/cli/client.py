"""The CLI's client side: calls the REST API, follows SSE with resume, renders for people."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hookagent.cli.rounds import print_rounds
from hookagent.errors import HookagentError

STYLES = {"stdout": "", "stderr": "red", "system": "cyan"}
KIND_STYLES = {
    "tool_use": "yellow",
    "tool_result": "dim",
    "error": "bold red",
    "status": "bold cyan",
}
RECONNECT_MAX_S = 10.0
_DURATION = re.compile(r"^(\d+)([smhd])$")
# Piped output is read by programs: no column is cut or wrapped to a terminal's width.
PIPE_WIDTH = 100_000
TOKEN_HINT = "pass --token or set HOOKAGENT_TOKEN"
# The setting holding each source's webhook secret, as the server reads it.
WEBHOOK_SECRETS = {
    "sentry": "HOOKAGENT_SENTRY_CLIENT_SECRET",
    "jira": "HOOKAGENT_JIRA_WEBHOOK_SECRET",
    "github": "HOOKAGENT_GITHUB_WEBHOOK_SECRET",
    "gitlab": "HOOKAGENT_GITLAB_WEBHOOK_SECRET",
    "linear": "HOOKAGENT_LINEAR_WEBHOOK_SECRET",
}


def console(**options: Any) -> Console:
    """A console for stdout: a terminal's width on a terminal, no width limit in a pipe."""
    if not sys.stdout.isatty():
        options.setdefault("width", PIPE_WIDTH)
    return Console(**options)


def checked(response: httpx.Response, *, hint: str = TOKEN_HINT) -> Any:
    """The JSON body, or the API's error detail as a :class:`HookagentError`.

    ``hint``: what to do about a 401 (the API token, or a webhook's secret).
    """
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        if response.status_code == 401:
            detail = f"{detail} ({hint})"
        raise HookagentError(f"{response.status_code}: {detail}")
    return response.json()


def print_json(response: httpx.Response) -> None:
    """The API's JSON body exactly as it came, on one line of stdout."""
    _line(response.text.rstrip("\n"))


def auth_headers(args: argparse.Namespace) -> dict[str, str]:
    """``Authorization: Bearer`` with ``--token`` / ``HOOKAGENT_TOKEN``, if one is given."""
    token = getattr(args, "token", None)
    return {"Authorization": f"Bearer {token}"} if token else {}


def request(
    args: argparse.Namespace, method: str, path: str, *, hint: str = TOKEN_HINT, **kwargs: Any
) -> httpx.Response:
    """A call to the API named by ``--url``; an error answer raises (see :func:`checked`)."""
    headers = {**auth_headers(args), **kwargs.pop("headers", {})}
    url = f"{args.url.rstrip('/')}{path}"
    response = httpx.request(method, url, headers=headers, timeout=30, **kwargs)
    checked(response, hint=hint)
    return response


def get(args: argparse.Namespace, path: str, **params: Any) -> Any:
    """GET a JSON resource of the API named by ``--url``."""
    return request(args, "GET", path, params=params).json()


def post(args: argparse.Namespace, path: str, **kwargs: Any) -> Any:
    """POST to the API named by ``--url``."""
    return request(args, "POST", path, **kwargs).json()


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


def sse_events(
    client: httpx.Client, url: str, params: dict[str, Any], last_id: int | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs; reconnects with ``Last-Event-ID`` after a dropped connection."""
    backoff = 0.5
    while True:
        headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        try:
            with client.stream(
                "GET", url, params=params, headers=headers, timeout=None
            ) as response:
                checked_stream(response)
                backoff = 0.5
                event, data = "message", ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line.startswith("id: "):
                        last_id = int(line[4:])
                    elif line == "" and data:
                        yield event, json.loads(data)
                        if event == "end":
                            return
                        event, data = "message", ""
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError) as exc:
            Console(stderr=True).print(
                f"[dim]connection lost ({exc!r}); resuming after {last_id}[/]"
            )
            time.sleep(backoff)  # reconnect backoff, not a poll
            backoff = min(backoff * 2, RECONNECT_MAX_S)


def checked_stream(response: httpx.Response) -> None:
    """Raise the API's error for a stream that did not start."""
    if response.status_code >= 400:
        response.read()
        checked(response)


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


def watch(args: argparse.Namespace) -> int:
    """Running tasks with live progress until Ctrl-C: a redrawn table, or lines in a pipe."""
    if not sys.stdout.isatty():
        return _watch_lines(args)
    screen = Console()
    with Live(console=screen, refresh_per_second=2) as live:
        try:
            while True:
                table = Table(title="running tasks")
                for name in WATCH_COLUMNS:
                    table.add_column(name, no_wrap=name == "task")
                for row in _watch_rows(args):
                    table.add_row(*row)
                live.update(table)
                time.sleep(1.0)  # a screen refresh, not a wait for work
        except KeyboardInterrupt:
            return 0


WATCH_COLUMNS = ("task", "status", "phase", "turns", "tools", "todos", "tokens", "elapsed")


def _watch_lines(args: argparse.Namespace) -> int:
    """Piped: a tab-separated line whenever a task's progress changes, flushed at once."""
    shown: dict[str, list[str]] = {}
    _line("\t".join(WATCH_COLUMNS))
    try:
        while True:
            rows = {row[0]: row for row in _watch_rows(args)}
            for task_id, row in rows.items():
                if shown.get(task_id) != row[:-1]:  # the elapsed time alone is no news
                    shown[task_id] = row[:-1]
                    _line("\t".join(row))
            for task_id in [t for t in shown if t not in rows]:
                del shown[task_id]
                now = get(args, f"/tasks/{task_id}/status")["status"]
                _line(f"{task_id}\t{now}")
            time.sleep(1.0)  # the next look at the running tasks, not a wait for work
    except KeyboardInterrupt:
        return 0


def _line(text: str) -> None:
    # Flushed: whoever reads the pipe sees each change as it happens, not at exit.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _watch_rows(args: argparse.Namespace) -> list[list[str]]:
    running = []
    for status in ("discovering", "executing"):
        running += get(args, "/tasks/", status=status, limit=100)["tasks"]
    rows = []
    for row in running:
        progress = get(args, f"/tasks/{row['task_id']}/progress").get("progress") or {}
        todos = progress.get("todos") or {}
        bar = ""
        if todos.get("total"):
            done = int(10 * todos["done"] / todos["total"])
            bar = f"{'█' * done}{'░' * (10 - done)} {todos['done']}/{todos['total']}"
        tokens = progress.get("tokens") or {}
        rows.append([
            row["task_id"], row["status"], str(progress.get("phase", "")),
            str(progress.get("turns", "")), str(sum((progress.get("tool_calls") or {}).values())),
            bar, f"{tokens.get('input', 0)}/{tokens.get('output', 0)}",
            f"{progress.get('elapsed_s', '')}s",
        ])  # fmt: skip
    return rows


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


def tasks(args: argparse.Namespace) -> int:
    """A table of tasks, newest first."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    response = request(args, "GET", "/tasks/", params=params)
    if args.json:
        print_json(response)
        return 0
    table = Table()
    table.add_column("task", no_wrap=True)
    for name in ("status", "kind", "source", "repository", "title", "created"):
        table.add_column(name)
    # A terminal gets short titles; a pipe gets them whole.
    cut = 60 if sys.stdout.isatty() else None
    for row in response.json()["tasks"]:
        table.add_row(
            row["task_id"], row["status"], row.get("kind", "change"), row["source"],
            row["repository"], escape(row["title"][:cut]), row["created_at"],
        )  # fmt: skip
    console().print(table)
    return 0


def stats(args: argparse.Namespace) -> int:
    """Change requests per repository, source and agent: opened, merged, closed, rates."""
    data = get(args, "/stats")
    table = Table()
    table.add_column("repository (source, agent)")
    for name in ("opened", "merged", "closed", "rate", "to merge", "rounds", "CI fixes"):
        table.add_column(name, justify="right")
    for row in [*data["groups"], data["total"]]:
        where = f"{row['repository']} ({row['source']}, {row['agent'] or '?'})"
        rate, median = row["merge_rate"], row["median_time_to_merge_s"]
        table.add_row(
            escape(where if row["repository"] else "(all)"),
            str(row["opened"]), str(row["merged"]), str(row["closed_unmerged"]),
            "—" if rate is None else f"{rate:.0%}",
            "—" if median is None else f"{median / 3600:.1f} h",
            _per_pr(row["rounds_per_pr"]), _per_pr(row["ci_fixes_per_pr"]),
        )  # fmt: skip
    Console().print(table)
    return 0


def _per_pr(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def status(args: argparse.Namespace) -> int:
    """A task's status, error, plan and review rounds (``--json``: the status response)."""
    if args.json:
        print_json(request(args, "GET", f"/tasks/{args.task_id}/status"))
        return 0
    data = get(args, f"/tasks/{args.task_id}")
    out = console()
    out.print(f"[bold]{data['task_id']}[/]  {data['status']}  (updated {data['updated_at']})")
    if data.get("error"):
        out.print(f"[red]error:[/] {escape(data['error'])}")
    if data.get("plan"):
        out.print("[bold]plan:[/]")
        out.print(escape(data["plan"]))
    print_rounds(out, data.get("rounds"), tty=sys.stdout.isatty())
    return 0


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


def action(args: argparse.Namespace) -> int:
    """approve, reject, revise, cancel or retry."""
    body = {
        name: getattr(args, name, None)
        for name in ("comment", "reason", "feedback")
        if getattr(args, name, None)
    }
    if getattr(args, "actor", None):
        Console(stderr=True).print("[dim]note: --as is ignored; the log names the API token[/]")
    response = request(args, "POST", f"/tasks/{args.task_id}/{args.verb}", json=body)
    if args.json:
        print_json(response)
        return 0
    data = response.json()
    console().print(f"{data['task_id']}: {data['previous']} → [bold]{data['status']}[/]")
    return 0


def submit(args: argparse.Namespace) -> int:
    """Post a payload file as the named source would, signed with its webhook secret."""
    try:
        with open(args.file, "rb") as handle:
            body = handle.read()
    except OSError as exc:
        raise HookagentError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        payload = json.loads(body)
    except ValueError as exc:
        # Checked here so a typo gets its reason, not the server's 400.
        raise HookagentError(f"{args.file} is not JSON: {exc}") from None
    setting = WEBHOOK_SECRETS[args.source]
    secret = args.secret or os.environ.get(setting) or None
    if secret is not None and args.source == "linear" and isinstance(payload, dict):
        # Linear's signature covers webhookTimestamp, which must be recent: a saved payload
        # goes out as if delivered now.
        payload["webhookTimestamp"] = int(time.time() * 1000)
        body = json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        **event_headers(args.source, args.event, payload),
    }
    if secret is not None:
        headers |= signature_headers(args.source, body, secret)
    hint = f"set {setting} to the server's value, or pass --secret"
    response = request(
        args, "POST", f"/webhooks/{args.source}", content=body, headers=headers, hint=hint
    )
    print_json(response)
    return 0


def event_headers(source: str, event: str | None, payload: Any) -> dict[str, str]:
    """The header naming the delivery's event, for the sources that send one."""
    if source == "github":
        # A payload with a comment is an issue_comment delivery, any other an issues one.
        guessed = (
            "issue_comment" if isinstance(payload, dict) and "comment" in payload else "issues"
        )
        return {"x-github-event": event or guessed}
    names = {"gitlab": "x-gitlab-event", "sentry": "sentry-hook-resource"}
    return {names[source]: event} if event and source in names else {}


def signature_headers(source: str, body: bytes, secret: str) -> dict[str, str]:
    """The headers ``source`` signs ``body`` with, as its verifier in sources/ checks them."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "sentry": {"sentry-hook-signature": digest},
        "jira": {"x-hub-signature": f"sha256={digest}"},
        "github": {"x-hub-signature-256": f"sha256={digest}"},
        "gitlab": {"x-gitlab-token": secret},  # GitLab signs nothing: the token is the proof
        "linear": {"linear-signature": digest},
    }[source]
