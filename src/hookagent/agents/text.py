"""Text helpers the adapters share."""

from __future__ import annotations

SUMMARY_CHARS = 2000


def short(text: str, limit: int = SUMMARY_CHARS) -> str:
    """``text`` stripped and cut to ``limit`` characters with a note of what was left out."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"
