"""Per-source delivery counts in fixed one-minute windows.

One counter key per source and minute: INCR, and the first increment sets its expiry, in
one script so a counter never outlives its window. A fixed window can let through up to
twice the limit around a window's edge; for a flood guard that is good enough, and it costs
one key and one round trip per delivery.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from hookagent.keys import Keys
from hookagent.store.client import Client, register_script

WINDOW_S = 60

_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@dataclass(frozen=True, slots=True)
class RateCount:
    """A delivery's place in its window: allowed or not, and when the window ends."""

    allowed: bool
    count: int
    retry_after_s: int


class RateLimiter:
    """Counts deliveries per source and minute against ``limit`` (0: no limit)."""

    def __init__(self, redis: Client, keys: Keys, *, limit: int) -> None:
        self._redis: Any = redis  # replies are int here; redis-py's stubs vary by version
        self._keys = keys
        self.limit = limit
        self._count = register_script(redis, _COUNT)

    async def count(self, source: str) -> RateCount:
        """Count one delivery from ``source``; not allowed past the limit this window."""
        if self.limit <= 0:
            return RateCount(allowed=True, count=0, retry_after_s=0)
        now = time.time()
        window = int(now // WINDOW_S)
        # Set at the window's first delivery, so the key outlives the window, never by more.
        ttl_ms = WINDOW_S * 1000
        count = int(await self._count(keys=[self._keys.rate(source, window)], args=[ttl_ms]))
        retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
        return RateCount(allowed=count <= self.limit, count=count, retry_after_s=retry_after)
