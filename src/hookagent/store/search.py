"""Full-text search across task logs: a term → tasks index, then a scan of candidate tasks only.

Ingest adds each batch's new terms (words of 3+ characters, lowercased) to one set per
term; a task's terms are remembered by its writer, so after its first batches a task adds
almost nothing. A query intersects the sets of its words to find candidate tasks, newest
first, and scans only those logs, so most of the 24 h of logs is never read.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hookagent.keys import Keys
from hookagent.models import TaskStatus
from hookagent.store.client import Client, is_cluster, register_script
from hookagent.store.logs import CHUNK_LUA, LogStore
from hookagent.store.tasks import TaskStore, created_ms

# Index terms are runs of ASCII letters and underscores (3 to 40 long): digits split words,
# so numbers, ids and hashes never become terms of their own (they would make nearly every
# line add new terms). Queries are split the same way, so both sides always agree.
_LETTERS = set("abcdefghijklmnopqrstuvwxyz_")
# A byte table, not a str one: bytes.translate is a plain table lookup, several times faster
# on the ingest path. It lowercases A-Z, blanks every other ASCII byte that is not a letter
# and keeps bytes >= 128, so a word with any non-ASCII character is dropped (as the Lua scan
# lowercases ASCII only, so does the index). Newlines stay, so that lines can be compared.
_SPLIT = bytes(
    (c + 32 if 65 <= c <= 90 else c) if c >= 128 or c == 10 or chr(c).lower() in _LETTERS else 32
    for c in range(256)
)
_QUERY = re.compile(r'"([^"]+)"|(\S+)')
MAX_TERMS_PER_TASK = 20_000
SNIPPET_CHARS = 160
SCAN_CHUNKS = 50  # chunks per XRANGE, up to logs.CHUNK_LINES (256) lines each
TASKS_PER_ROUND = 32

# Scans one task's log on the server and returns only matching lines, so a candidate
# task costs a fraction of a millisecond instead of shipping every line to Python.
# Matching lowercases ASCII only, like the index; needles arrive lowercased. Log entries
# are chunks (store/logs.py, read with its CHUNK_LUA): a chunk whose JSON text lacks a
# plain needle (ARGV[2], a count: the first needles, those JSON leaves as they are) is
# skipped without decoding.
_SCAN = (
    CHUNK_LUA
    + """
local key, wanted, plain, needles = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), {}
for i = 3, #ARGV do needles[#needles + 1] = ARGV[i] end
local out, start = {}, '-'
while #out < wanted * 4 do
  local rows = redis.call('XRANGE', key, start, '+', 'COUNT', SCAN_CHUNKS)
  if #rows == 0 then break end
  for _, row in ipairs(rows) do
    local text = ''
    for j = 1, #row[2], 2 do if row[2][j] == 'c' then text = row[2][j + 1] end end
    local lowered, ok = string.lower(text), true
    for n = 1, plain do
      if not string.find(lowered, needles[n], 1, true) then ok = false; break end
    end
    if ok then
      local c = read_chunk(text)
      local first = tonumber(string.sub(row[1], 3)) - 1
      for i, msg in ipairs(c.messages) do
        local low, hit = string.lower(msg), true
        for _, needle in ipairs(needles) do
          if not string.find(low, needle, 1, true) then hit = false; break end
        end
        if hit then
          out[#out + 1] = first + i - 1; out[#out + 1] = at(c.timestamps, i)
          out[#out + 1] = at(c.streams, i); out[#out + 1] = msg
          if #out >= wanted * 4 then break end
        end
      end
    end
    if #out >= wanted * 4 then break end
  end
  if #rows < SCAN_CHUNKS then break end
  start = '(' .. rows[#rows][1]
end
return out
""".replace("SCAN_CHUNKS", str(SCAN_CHUNKS))
)
# Characters JSON may escape (quote, backslash, slash, controls, non-ASCII): a needle with
# one of them may be spelled differently in a chunk's text, so it is matched per line only.
_ESCAPED = re.compile(r'[^\x20-\x7e]|["\\/]')


def terms_of(texts: Iterable[str]) -> set[str]:
    """The index terms in ``texts`` (a few passes over the whole batch, in C)."""
    data = "\n".join(texts).encode("utf-8", "surrogatepass").translate(_SPLIT)
    # Once digits and punctuation are blanks, log lines repeat a lot ("line <n> of <m>",
    # "PASSED tests/<path>"): splitting each distinct line into words, not every line, makes
    # far fewer objects. When lines are all distinct, this costs one split and a set more.
    lines = set(data.split(b"\n"))
    words = set(b"\n".join(lines).split())
    return {w.decode() for w in words if 3 <= len(w) <= 40 and w.isascii()}


@dataclass(frozen=True)
class Query:
    """A parsed query: every word and every quoted phrase must occur (case-insensitive)."""

    needles: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Query:
        """``word "a phrase" other`` → three needles."""
        needles = [(p or w).lower().strip() for p, w in _QUERY.findall(text)]
        return cls(tuple(n for n in needles if n))

    @property
    def terms(self) -> set[str]:
        """Index terms every match must contain."""
        return terms_of(self.needles)

    def matches(self, message: str) -> bool:
        """All needles occur in ``message``."""
        lowered = message.lower()
        return all(n in lowered for n in self.needles)

    def snippet(self, message: str) -> str:
        """A window around the first needle, HTML-escaped, needles wrapped in ``<mark>``."""
        lowered = message.lower()
        first = min((lowered.find(n) for n in self.needles if n in lowered), default=0)
        start = max(0, first - SNIPPET_CHARS // 3)
        window = message[start : start + SNIPPET_CHARS]
        escaped = html.escape(window)
        for needle in sorted(set(self.needles), key=len, reverse=True):
            pattern = re.compile(re.escape(html.escape(needle)), re.IGNORECASE)
            escaped = pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", escaped)
        prefix = "…" if start else ""
        suffix = "…" if start + SNIPPET_CHARS < len(message) else ""
        return f"{prefix}{escaped}{suffix}"


@dataclass(frozen=True)
class Hit:
    """One matching log entry."""

    task_id: str
    seq: int
    timestamp: str
    stream: str
    snippet: str


class SearchIndex:
    """Writes the term index at ingest and answers queries."""

    def __init__(
        self, redis: Client, keys: Keys, *, tasks: TaskStore, logs: LogStore, ttl_seconds: int
    ) -> None:
        self._redis: Any = redis
        self._keys = keys
        self._tasks = tasks
        self._logs = logs
        self._ttl = ttl_seconds
        self._scan_script = register_script(redis, _SCAN)
        self._expired_at: dict[str, float] = {}

    async def add(self, task_id: str, terms: set[str]) -> None:
        """Record that ``task_id``'s log contains ``terms`` (one pipeline)."""
        if not terms:
            return
        now = time.monotonic()
        async with self._redis.pipeline(transaction=False) as pipe:
            for term in terms:
                key = self._keys.term(term)
                pipe.sadd(key, task_id)
                # The TTL only needs to outlive the newest task in the set: refreshing it
                # once per tenth of the TTL per process is enough and halves the commands.
                if now - self._expired_at.get(term, -1e18) > self._ttl / 10:
                    self._expired_at[term] = now
                    pipe.expire(key, self._ttl)
            await pipe.execute()

    async def search(
        self,
        text: str,
        *,
        status: TaskStatus | None = None,
        since_ms: int = 0,
        limit: int = 50,
    ) -> list[Hit]:
        """Matching entries, newest tasks first, at most ``limit``."""
        query = Query.parse(text)
        if not query.needles:
            return []
        candidates = await self._candidates(query, since_ms)
        if status is not None:
            candidates = await self._with_status(candidates, status)
        hits: list[Hit] = []
        # The first page usually fills from the newest tasks: scan 1, then 2, 4, … per round
        # trip, so a common word costs one small call and a rare one few round trips.
        start, size = 0, 1
        while start < len(candidates) and len(hits) < limit:
            group = candidates[start : start + size]
            hits += await self._scan(group, query, limit - len(hits))
            start, size = start + size, min(size * 2, TASKS_PER_ROUND)
        return hits[:limit]

    async def _candidates(self, query: Query, since_ms: int) -> list[str]:
        terms = query.terms
        if terms:
            ids: set[str] = await self._redis.sinter([self._keys.term(t) for t in terms])
        else:
            # Needles too short to index: fall back to every task, newest first.
            ids = set(await self._redis.zrevrange(self._keys.tasks_by_created(), 0, -1))
        return sorted((i for i in ids if created_ms(i) >= since_ms), key=created_ms, reverse=True)

    async def _with_status(self, candidates: list[str], status: TaskStatus) -> list[str]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in candidates:
                pipe.hget(self._keys.task(task_id), "status")
            statuses: list[str | None] = await pipe.execute()
        return [t for t, s in zip(candidates, statuses, strict=True) if s == status.value]

    async def _scan_all(self, task_ids: list[str], args: list[str | int]) -> list[list[Any]]:
        if is_cluster(self._redis):
            # A cluster pipeline refuses scripts: one call per task, all at once instead.
            calls = (self._scan_script(keys=[self._keys.logs(t)], args=args) for t in task_ids)
            return list(await asyncio.gather(*calls))
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                await self._scan_script(keys=[self._keys.logs(task_id)], args=args, client=pipe)
            # Lua numbers (the seqs) come back as ints, strings as str.
            replies: list[list[Any]] = await pipe.execute()
        return replies

    async def _scan(self, task_ids: list[str], query: Query, wanted: int) -> list[Hit]:
        plain = [n for n in query.needles if not _ESCAPED.search(n)]
        rest = [n for n in query.needles if _ESCAPED.search(n)]
        needles: list[str | int] = [len(plain), *plain, *rest]
        replies = await self._scan_all(task_ids, [wanted, *needles])
        hits: list[Hit] = []
        for task_id, flat in zip(task_ids, replies, strict=True):
            for i in range(0, min(len(flat), (wanted - len(hits)) * 4), 4):
                seq, ts, stream, message = flat[i : i + 4]
                hits.append(Hit(task_id, int(seq), ts, stream, query.snippet(message)))
        return hits
