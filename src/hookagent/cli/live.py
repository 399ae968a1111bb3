"""``hookagent watch``: running tasks with live progress, redrawn on a terminal, lines in a pipe."""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from hookagent.cli.api_client import get
from hookagent.cli.output import print_line


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
    print_line("\t".join(WATCH_COLUMNS))
    try:
        while True:
            rows = {row[0]: row for row in _watch_rows(args)}
            for task_id, row in rows.items():
                if shown.get(task_id) != row[:-1]:  # the elapsed time alone is no news
                    shown[task_id] = row[:-1]
                    print_line("\t".join(row))
            for task_id in [t for t in shown if t not in rows]:
                del shown[task_id]
                now = get(args, f"/tasks/{task_id}/status")["status"]
                print_line(f"{task_id}\t{now}")
            time.sleep(1.0)  # the next look at the running tasks, not a wait for work
    except KeyboardInterrupt:
        return 0


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
