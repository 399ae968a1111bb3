"""An issue's discussion rendered for a prompt: oldest first, the newest kept within a cap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# hookagent's own comments carry this (an HTML comment on GitHub, a marker line on Jira), so
# its replies, which explain ``@hookagent approve``, never read as commands nor as discussion.
OWN_MARKER = "hookagent:task-"
# The thread's share of a prompt; past it, the oldest comments are left out.
THREAD_MAX_BYTES = 24 * 1024


@dataclass(frozen=True, slots=True)
class Comment:
    """One comment of an issue's discussion."""

    author: str
    at: str
    body: str


def render_thread(comments: Sequence[Comment], *, limit: int = THREAD_MAX_BYTES) -> str:
    """``Comments, oldest first:`` and each comment; the newest that fit in ``limit`` bytes."""
    blocks = [f"--- {c.author or 'someone'} at {c.at or '?'}:\n{c.body.strip()}" for c in comments]
    kept: list[str] = []
    size = 0
    for block in reversed(blocks):
        size += len(block.encode("utf-8")) + 2
        if size > limit:
            break
        kept.append(block)
    if not kept:
        return ""
    left_out = len(blocks) - len(kept)
    head = "Comments, oldest first"
    head += f" ({left_out} earlier comments left out for size):" if left_out else ":"
    return "\n\n".join([head, *reversed(kept)])


def is_own_comment(body: str) -> bool:
    """Whether a comment is one of hookagent's own replies (it carries the marker)."""
    return OWN_MARKER in (body or "")
