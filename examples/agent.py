#!/usr/bin/env python3
"""A stand-in coding agent for the quick start: `HOOKAGENT_AGENT=command` runs it.

hookagent's `command` adapter writes the prompt on stdin, runs this in the task's clone
and logs every line it prints; what it prints while planning is the plan. When the prompt
carries an "Approved plan:" it is the execution phase: it edits a file, which hookagent
then commits and pushes on the branch hookagent/<task id>.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

NOTES = Path("HOOKAGENT_NOTES.md")


def say(line: str) -> None:
    """Print one line now, a moment apart, so `hookagent logs -f` shows them arriving."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    time.sleep(0.2)


def field(prompt: str, name: str) -> str:
    """The text after `name:` on its line of the prompt, or an empty string."""
    for line in prompt.splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return ""


def plan(prompt: str) -> int:
    """Planning: look around (read-only) and print the plan."""
    title = field(prompt, "Title") or "the reported issue"
    files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True)
    say(f"Investigating: {title}")
    say(f"Files in the checkout: {', '.join(files.stdout.split()) or '(none)'}")
    say("Plan:")
    say(f"1. Record the issue '{title}' in {NOTES}.")
    say("2. Leave the code as it is: this demo agent only writes notes.")
    return 0


def execute(prompt: str) -> int:
    """Execution: carry out the approved plan by editing a file."""
    title = field(prompt, "Title") or "the reported issue"
    marker = "Approver's comment:"
    comment = prompt.split(marker, 1)[1].strip() if marker in prompt else ""
    say(f"Executing the approved plan for: {title}")
    with NOTES.open("a", encoding="utf-8") as notes:
        notes.write(f"- {title}" + (f" (approver: {comment})" if comment else "") + "\n")
    say(f"Edited {NOTES}")
    return 0


def main() -> int:
    """Read the prompt, then plan or execute."""
    prompt = sys.stdin.read()
    return execute(prompt) if "Approved plan:" in prompt else plan(prompt)


if __name__ == "__main__":
    sys.exit(main())
