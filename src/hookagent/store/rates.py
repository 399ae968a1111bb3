"""Delivery counts in fixed one-minute windows, per source or per client address.

One counter key per name (a source, a client address) and minute: INCR, and the first
increment sets its expiry, in one script so a counter never outlives its window. A fixed
window can let through up to twice the limit around a window's edge; for a flood guard that
is good enough, and it costs one key and one round trip per delivery.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hookagent.store.client import Client, register_script
from hookagent.store.keys import Keys

# HOOKAGENT_RATE_LIMIT is per minute: one fixed window of this length per count.
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
    """Counts deliveries per name and minute against ``limit`` (0: no limit).

    ``key`` builds a window's counter key from the name (``Keys.rate`` unless given).
    """

    def __init__(
        self,
        redis: Client,
        keys: Keys,
        *,
        limit: int,
        key: Callable[[str, int], str] | None = None,
    ) -> None:
        self._redis: Any = redis  # replies are int here; redis-py's stubs vary by version
        self._key = key or keys.rate
        self.limit = limit
        self._count = register_script(redis, _COUNT)

    def window_key(self, source: str) -> tuple[str, int, int]:
        """The counter key of ``source``'s current window, the limit and the key's TTL (ms).

        For a script that counts a delivery itself (store/intake.py), the way :meth:`count`
        does; the limit is 0 when there is none.
        """
        return self._key(source, int(time.time() // WINDOW_S)), max(self.limit, 0), WINDOW_S * 1000

    def retry_after(self) -> int:
        """Seconds until the current window ends (at least 1)."""
        now = time.time()
        return max(1, math.ceil((int(now // WINDOW_S) + 1) * WINDOW_S - now))

    async def count(self, source: str) -> RateCount:
        """Count one delivery from ``source`` (a name); not allowed past the limit this window."""
        if self.limit <= 0:
            return RateCount(allowed=True, count=0, retry_after_s=0)
        now = time.time()
        window = int(now // WINDOW_S)
        # Set at the window's first delivery, so the key outlives the window, never by more.
        ttl_ms = WINDOW_S * 1000
        count = int(await self._count(keys=[self._key(source, window)], args=[ttl_ms]))
        retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
        return RateCount(allowed=count <= self.limit, count=count, retry_after_s=retry_after)
