"""Per-run progress as adapters see it: turns, tool calls, files, todos, tokens, cost."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FILE_KEYS = ("file_path", "path", "notebook_path")


@dataclass
class Progress:
    """What the agent has done so far in this run; adapters update it as they parse."""

    turns: int = 0
    tools: Counter[str] = field(default_factory=Counter)
    files: set[str] = field(default_factory=set)
    todos_done: int | None = None
    todos_total: int | None = None
    todo_items: list[dict[str, str]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    lines: int = 0

    def tool_call(self, name: str, tool_input: dict[str, Any]) -> None:
        """Count a tool call, note the file it touches, read a todo list it writes."""
        self.tools[name] += 1
        for key in FILE_KEYS:
            if isinstance(tool_input.get(key), str):
                self.files.add(tool_input[key])
        todos = tool_input.get("todos")
        if name == "TodoWrite" and isinstance(todos, list):
            items = [t for t in todos if isinstance(t, dict)]
            self.todos_total = len(items)
            self.todos_done = sum(1 for t in items if t.get("status") == "completed")
            # The items themselves feed the checklist in the reply on the source issue.
            self.todo_items = [
                {"content": str(t.get("content", ""))[:200], "status": str(t.get("status", ""))}
                for t in items[:50]
            ]

    def usage(self, usage: Any) -> None:
        """Add a message's token usage."""
        if isinstance(usage, dict):
            self.input_tokens += count(usage.get("input_tokens"))
            self.output_tokens += count(usage.get("output_tokens"))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "turns": self.turns,
            "tool_calls": dict(self.tools),
            "files_touched": sorted(self.files),
            "todos": None
            if self.todos_total is None
            else {"done": self.todos_done, "total": self.todos_total},
            "todo_items": self.todo_items,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "cost_usd": self.cost_usd,
            "lines": self.lines,
        }


def finite(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (text, bool, NaN, 1e999, 10**400)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def count(value: Any) -> int:
    """A JSON number as a count; 0 for anything that is not a finite number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = finite(value)
    return 0 if number is None else int(number)
