"""Where the client commands print: a terminal's width on a terminal, lines flushed in a pipe."""

from __future__ import annotations

import sys
from typing import Any

import httpx
from rich.console import Console

# Piped output is read by programs: no column is cut or wrapped to a terminal's width.
PIPE_WIDTH = 100_000


def console(**options: Any) -> Console:
    """A console for stdout: a terminal's width on a terminal, no width limit in a pipe."""
    if not sys.stdout.isatty():
        options.setdefault("width", PIPE_WIDTH)
    return Console(**options)


def print_json(response: httpx.Response) -> None:
    """The API's JSON body exactly as it came, on one line of stdout."""
    print_line(response.text.rstrip("\n"))


def print_line(text: str) -> None:
    """``text`` as one line of stdout, flushed at once."""
    # Flushed: whoever reads the pipe sees each change as it happens, not at exit.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
