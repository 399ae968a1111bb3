"""Times as the seed's entries carry them (UTC ISO-8601 with milliseconds) and spans between."""

from __future__ import annotations

import math
import time
from datetime import datetime


def utc_iso(epoch: float | None = None) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``, as the seed's log entries carry."""
    # time.strftime, not datetime's: a third of the cost. The fraction is rounded to the
    # microsecond first, as datetime.fromtimestamp does, so the milliseconds are its own.
    fraction, whole = math.modf(time.time() if epoch is None else epoch)
    seconds, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds)) + f"{micros // 1000:03d}Z"


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (``utc_iso`` times), never negative; None without both."""
    if not start or not end:
        return None
    elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(elapsed.total_seconds(), 0.0)
