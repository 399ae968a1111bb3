"""A task's review rounds as ``hookagent status`` prints them: plain lines, never markup.

Every item is a reviewer's text: each is put on one line with its control characters
escaped (no terminal escape sequence gets through) and printed with Rich's markup, emoji
and highlighting off.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from hookagent.models import one_line

# A comment's first characters on a terminal; a pipe gets what the API gave (capped there).
TERMINAL_BODY_CHARS = 100
PIPE_BODY_CHARS = 1_000


def round_lines(rounds: dict[str, Any] | None, *, body_chars: int) -> list[str]:
    """The lines for ``rounds`` (``GET /tasks/{id}``'s field); none when no round ran or waits."""
    if not rounds or not (rounds["ran"] or rounds["pending_count"] or rounds["running_count"]):
        return []
    lines = [f"review rounds: {rounds['ran']} of at most {rounds['max_rounds']} ran"]
    for done in rounds["finished"]:
        when = f"  {done['finished_at']}" if done.get("finished_at") else ""
        what = f"{done['kind']}, {_count(done['item_count'])}"
        lines.append(f"  round {done['number']}{when}  {what}: {one_line(done['outcome'])}")
        lines += _items(done["items"], done["item_count"], body_chars)
    if rounds["running_count"]:
        lines.append(f"  running round {rounds['ran']}: {_count(rounds['running_count'])}")
        lines += _items(rounds["running"], rounds["running_count"], body_chars)
    if rounds["pending_count"]:
        lines.append(f"  waiting for the next round: {_count(rounds['pending_count'])}")
        lines += _items(rounds["pending"], rounds["pending_count"], body_chars)
    return lines


def print_rounds(out: Console, rounds: dict[str, Any] | None, *, tty: bool) -> None:
    """Print :func:`round_lines`, as text only."""
    chars = TERMINAL_BODY_CHARS if tty else PIPE_BODY_CHARS
    for line in round_lines(rounds, body_chars=chars):
        out.print(line, markup=False, emoji=False, highlight=False)


def _items(items: list[dict[str, Any]], count: int, body_chars: int) -> list[str]:
    lines = []
    for item in items:
        where = f" on {item['path']}" if item.get("path") else ""
        where += f":{item['line']}" if item.get("path") and item.get("line") else ""
        who = f"{item['kind']} by {item.get('author') or '?'}{where}"
        lines.append(f"    - {one_line(who, 400)}: {one_line(item['body'], body_chars)}")
    if count > len(items):
        lines.append(f"    … and {count - len(items)} more")
    return lines


def _count(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"
