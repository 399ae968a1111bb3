"""Strangers' text made safe to show: control characters escaped, length capped."""

from __future__ import annotations

# Control characters (C0, DEL, C1) and Unicode line breaks, escaped in text that people and
# payloads supply before it becomes part of a log line.
_CONTROLS = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
}
_CONTROLS |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def one_line(text: str, limit: int = 2000) -> str:
    """``text`` made safe for one log line: control characters escaped, length capped."""
    escaped = text.translate(_CONTROLS)
    if len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}… [{len(escaped) - limit} more characters]"


# The same, but for text shown as a block: its line breaks and tabs kept.
_BLOCK_CONTROLS = {c: v for c, v in _CONTROLS.items() if c not in (ord("\n"), ord("\t"))}


def block_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` made safe to show as a block (lines kept), cut to ``limit``; and if it was cut."""
    escaped = text.translate(_BLOCK_CONTROLS)
    return escaped[:limit], len(escaped) > limit
