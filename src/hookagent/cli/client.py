"""The client commands about tasks: the list, one task's status, change stats, actions.

The rest of the client lives by noun: api_client.py (requests, SSE), output.py, loglines.py
(logs, follow, search), live.py (watch) and signing.py (submit).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hookagent.cli.api_client import get, request
from hookagent.cli.output import console, print_json
from hookagent.cli.rounds import print_rounds


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
