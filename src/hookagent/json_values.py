"""Untrusted JSON read defensively (a wrong type reads as empty), and the text made of it bounded.

A leaf: sources parse payloads with it, forges read outside APIs' answers with it.
"""

from __future__ import annotations

from typing import Any

PROMPT_MAX_CHARS = 32 * 1024


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def array(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: Any) -> str:
    """``value`` as stripped text when it is a string or number, else empty."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def clip_prompt(prompt: str) -> str:
    """Keep prompts bounded whatever the payload carries."""
    if len(prompt) <= PROMPT_MAX_CHARS:
        return prompt
    return prompt[:PROMPT_MAX_CHARS] + "\n… [context truncated]"


def field(name: str, value: str) -> str:
    """``Name: value`` for a prompt line, or empty when there is no value."""
    return f"{name}: {value}" if value else ""
