"""The ``hookagent`` command: thin, it parses arguments and calls the service or the API."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hookagent.errors import HookagentError
from hookagent.service import embedded_store, run_services
from hookagent.settings import Settings, get_settings

STYLES = {"stdout": "", "stderr": "red", "system": "cyan"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.run(args)
    except HookagentError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(exc.message)}")
        return 1
    except httpx.TransportError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] cannot reach {args.url}: {escape(str(exc))}"
        )
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookagent", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="API + workers (+ embedded Valkey when no HOOKAGENT_REDIS_URL)")
    _serve_options(up, workers=True)
    up.set_defaults(run=_up)
    server = sub.add_parser("server", help="the API server alone (needs HOOKAGENT_REDIS_URL)")
    _serve_options(server, workers=False)
    server.set_defaults(run=_server)
    worker = sub.add_parser("worker", help="worker loops alone (needs HOOKAGENT_REDIS_URL)")
    worker.add_argument("--workers", type=int, help="loops in this process (HOOKAGENT_WORKERS)")
    worker.set_defaults(run=_worker)

    tasks = _client(sub, "tasks", "list tasks, newest first")
    tasks.add_argument("--status")
    tasks.add_argument("--limit", type=int, default=50)
    tasks.set_defaults(run=_tasks)
    status = _client(sub, "status", "a task's status and plan")
    status.add_argument("task_id")
    status.set_defaults(run=_status)
    logs = _client(sub, "logs", "a task's log lines")
    logs.add_argument("task_id")
    logs.add_argument("--offset", type=int, default=0)
    logs.add_argument("--limit", type=int, default=-1)
    logs.set_defaults(run=_logs)

    for verb, help_text, text_arg in (
        ("approve", "approve a pending plan (queues its execution)", "--comment"),
        ("reject", "reject a pending plan", "--reason"),
        ("revise", "plan again with feedback", "--feedback"),
        ("cancel", "stop a task wherever it is", "--reason"),
        ("retry", "new attempt of a failed or cancelled task", None),
    ):
        action = _client(sub, verb, help_text)
        action.add_argument("task_id")
        if text_arg:
            action.add_argument(text_arg, required=verb == "revise")
        action.add_argument("--as", dest="actor", help="who you are, for the task's log")
        action.set_defaults(run=_action, verb=verb)

    submit = _client(sub, "submit", "post a webhook payload file to a running server")
    submit.add_argument("source", choices=["sentry", "jira", "github"])
    submit.add_argument("file", help="a JSON payload")
    submit.add_argument("--event", default="issues", help="X-GitHub-Event for github")
    submit.set_defaults(run=_submit)
    return parser


def _serve_options(parser: argparse.ArgumentParser, *, workers: bool) -> None:
    parser.add_argument("--host", help="bind address (HOOKAGENT_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (HOOKAGENT_PORT, default 8000)")
    if workers:
        parser.add_argument(
            "--workers", type=int, help="worker loops (HOOKAGENT_WORKERS, default 1)"
        )


def _client(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the hookagent API")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    # Options given on the command line override the environment, field by field.
    names = ("host", "port", "workers")
    return get_settings(
        **{n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    )


def _require_redis(settings: Settings) -> None:
    if not settings.redis_url:
        raise HookagentError("HOOKAGENT_REDIS_URL is required here; `hookagent up` embeds Valkey")


def _up(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with embedded_store(settings) as ready:
        asyncio.run(run_services(ready, server=True, workers=ready.workers))
    return 0


def _server(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_redis(settings)
    asyncio.run(run_services(settings, server=True, workers=0))
    return 0


def _worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_redis(settings)
    asyncio.run(run_services(settings, server=False, workers=max(1, settings.workers)))
    return 0


def _get(args: argparse.Namespace, path: str, **params: Any) -> Any:
    return _checked(httpx.get(f"{args.url.rstrip('/')}{path}", params=params, timeout=30))


def _checked(response: httpx.Response) -> Any:
    """The JSON body, or the API's error detail as a HookagentError."""
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        raise HookagentError(f"{response.status_code}: {detail}")
    return response.json()


def _post(args: argparse.Namespace, path: str, **kwargs: Any) -> Any:
    return _checked(httpx.post(f"{args.url.rstrip('/')}{path}", timeout=30, **kwargs))


def _action(args: argparse.Namespace) -> int:
    body = {
        name: getattr(args, name, None)
        for name in ("comment", "reason", "feedback", "actor")
        if getattr(args, name, None)
    }
    body.setdefault("actor", "cli")
    data = _post(args, f"/tasks/{args.task_id}/{args.verb}", json=body)
    Console().print(f"{data['task_id']}: {data['previous']} → [bold]{data['status']}[/]")
    return 0


def _submit(args: argparse.Namespace) -> int:
    with open(args.file, "rb") as handle:
        body = handle.read()
    headers = {"content-type": "application/json"}
    if args.source == "github":
        headers["x-github-event"] = args.event
    data = _post(args, f"/webhooks/{args.source}", content=body, headers=headers)
    Console(soft_wrap=True).print_json(data=data)
    return 0


def _tasks(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    data = _get(args, "/tasks/", **params)
    table = Table()
    table.add_column("task", no_wrap=True)
    for name in ("status", "source", "repository", "title", "created"):
        table.add_column(name)
    for row in data["tasks"]:
        table.add_row(
            row["task_id"], row["status"], row["source"], row["repository"],
            escape(row["title"][:60]), row["created_at"],
        )  # fmt: skip
    Console().print(table)
    return 0


def _status(args: argparse.Namespace) -> int:
    data = _get(args, f"/tasks/{args.task_id}/status")
    console = Console()
    meta = data["metadata"]
    console.print(f"[bold]{data['task_id']}[/]  {data['status']}  (updated {meta['updated_at']})")
    if meta.get("error"):
        console.print(f"[red]error:[/] {escape(meta['error'])}")
    if meta.get("plan"):
        console.print("[bold]plan:[/]")
        console.print(escape(meta["plan"]))
    return 0


def _logs(args: argparse.Namespace) -> int:
    data = _get(args, f"/tasks/{args.task_id}/logs", offset=args.offset, limit=args.limit)
    console = Console(highlight=False, soft_wrap=True)
    for entry in data["logs"]:
        style = STYLES.get(entry["stream"], "")
        line = f"[dim]{entry['seq']:>6} {entry['timestamp']}[/] {escape(entry['message'])}"
        console.print(f"[{style}]{line}[/]" if style else line)
    if data["has_more"]:
        console.print(f"[dim]… more from --offset {args.offset + len(data['logs'])}[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
