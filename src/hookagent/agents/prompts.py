"""The instructions wrapped around a task's context for each phase."""

from __future__ import annotations

PLANNING = """\
You are investigating an issue in the repository {repository}, which is checked out in the
current directory. Read the code, find the cause, and write a concise plan for the fix:
which files change, how, and how to test it. Do not edit files in this phase; the plan
will be reviewed by a human before anything is changed.

Source: {source}
Title: {title}

{context}
"""


def planning_prompt(*, repository: str, source: str, title: str, context: str) -> bytes:
    """The planning prompt, encoded for the agent's stdin."""
    text = PLANNING.format(repository=repository, source=source, title=title, context=context)
    return text.encode("utf-8")
