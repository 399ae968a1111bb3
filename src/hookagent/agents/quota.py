"""Recognising a run that ended on the model's quota: a rate limit, a usage limit, overload.

Each adapter reads its CLI's own events (an HTTP status, an error message) and asks
:func:`quota_in` about the text; a hit carries the wait the API asked for, when it gave one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# HTTP statuses of a model API out of quota (429) or overloaded (Anthropic's 529).
QUOTA_STATUSES = frozenset({429, 529})
_QUOTA_TEXT = re.compile(
    r"\b(?:429|529)\b|too many requests|usage limit|rate[ _-]?limit|overloaded"
    r"|quota exceeded|exceeded your current quota|resource[ _]exhausted"
    r"|resource has been exhausted|exhausted your (?:daily )?quota",
    re.IGNORECASE,
)
# "Retry-After: 30", "retry after 2s", "Please retry in 2.5s", "try again in 1m30s".
_RETRY = re.compile(
    r"(?:retry[- ]after|retry in|try again in)[:\s]*"
    r"((?:\d+(?:\.\d+)?\s*(?:ms|h|m(?:in)?|s(?:ec)?)?\s*)+)",
    re.IGNORECASE,
)
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|h|m(?:in)?|s(?:ec)?)?", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, "sec": 1.0}
# A wait longer than a week is no Retry-After but a misread number.
RETRY_MAX_S = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class QuotaHit:
    """The run ended on the model's quota: why, and the seconds to wait when the API said."""

    reason: str
    retry_after_s: float | None = None


def quota_in(text: str, *, status: int | None = None) -> QuotaHit | None:
    """A hit when ``text`` (an error) or ``status`` (its HTTP status) says quota; else None."""
    if status not in QUOTA_STATUSES and not _QUOTA_TEXT.search(text):
        return None
    reason = " ".join(text.split())[:200] or f"HTTP {status}"
    return QuotaHit(reason=reason, retry_after_s=retry_after(text))


def retry_after(text: str) -> float | None:
    """The wait ``text`` asks for ("retry after 30s", "try again in 1m30s"), in seconds."""
    found = _RETRY.search(text)
    if found is None:
        return None
    total = 0.0
    for amount, unit in _AMOUNT.findall(found.group(1)):
        total += float(amount) * _UNIT_S[(unit or "s").lower()]
    return total if 0 < total <= RETRY_MAX_S else None


def seconds(value: object, scale: float = 1.0) -> float | None:
    """``value`` (a number of ``1/scale`` seconds) as a wait, or None when it is none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    waited = float(value) / scale
    return waited if 0 < waited <= RETRY_MAX_S else None
