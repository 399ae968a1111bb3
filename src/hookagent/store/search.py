"""Full-text search across task logs: per-term postings of line blocks, newest tasks first.

Ingest splits each batch into blocks of up to 256 lines (the log's chunks, store/logs.py)
and adds one *posting* per (term, block) to the term's sorted set: the member names the
task and the block's lines, the score is minus the task's creation time, so the set reads
newest task first and, within a task, block by block in line order. A query walks the
postings of its rarest term in that order, keeps a block only if every other term's set
holds it too (one script on the ``{terms}`` slot), and scans just those blocks on the
server for lines holding every word and phrase, stopping as soon as a page is full: a
common word costs its first few blocks, not a scan of every log that mentions it.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hookagent.models import TaskStatus
from hookagent.store._search_scripts import BLOCKS, POSTINGS, SCAN
from hookagent.store.client import Client, is_cluster, register_script
from hookagent.store.keys import Keys
from hookagent.store.logs import CHUNK_LINES, Columns, LogStore
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
SNIPPET_CHARS = 160
# Lines per posting: the log's chunk size, so a block is (nearly always) one chunk to read.
BLOCK_LINES = CHUNK_LINES
# Postings one process adds per task at most: a log of random words (a hex dump, base64)
# would otherwise add hundreds a block. Later blocks of such a task are not searchable.
MAX_POSTINGS_PER_TASK = 50_000
_BUDGETS_KEPT = 4096  # tasks whose posting count a process remembers (writers alive at once)
TASKS_PER_ROUND = 32
FIRST_BLOCKS = 4  # blocks a query asks for first; then see next_round
MAX_BLOCKS = 512
# Postings of the rarest term one script call examines at most, so that a query whose
# terms rarely meet never holds the server for long; the client calls again from there.
EXAMINE_PER_CALL = 4096

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


def terms_of_blocks(texts: list[str], size: int) -> list[set[str]]:
    """``terms_of`` each run of ``size`` texts, the whole list encoded and mapped at once."""
    lines = "\n".join(texts).encode("utf-8", "surrogatepass").translate(_SPLIT).split(b"\n")
    if len(lines) != len(texts):  # a text holds a newline: lines and texts do not align
        return [terms_of(texts[lo : lo + size]) for lo in range(0, len(texts), size)]
    out = []
    for lo in range(0, len(lines), size):
        words = set(b"\n".join(set(lines[lo : lo + size])).split())
        out.append({w.decode() for w in words if 3 <= len(w) <= 40 and w.isascii()})
    return out


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

    def needle_args(self, rarest: str = "") -> list[str | int]:
        """The scripts' needle arguments: how many are plain, the plain ones, the rest.

        The plain needle holding the ``rarest`` term comes first (the scan looks for its
        occurrences), then the longest: a longer needle tends to occur less often.
        """
        plain = sorted(
            (n for n in self.needles if not _ESCAPED.search(n)),
            key=lambda n: (rarest not in terms_of([n]), -len(n)),
        )
        rest = [n for n in self.needles if _ESCAPED.search(n)]
        return [len(plain), *plain, *rest]


@dataclass(frozen=True)
class Hit:
    """One matching log entry."""

    task_id: str
    seq: int
    timestamp: str
    stream: str
    snippet: str


def next_round(size: int, scanned: int, found: int, limit: int, *, eager: bool) -> int:
    """How many blocks to ask for next, after ``found`` hits in ``scanned`` blocks.

    Every round is two round trips. On a cluster every block of a round is read even when
    the page fills early, so the next round is sized by the hits per block so far (a
    quarter more than the page still needs), at most three times the blocks read so far
    (a rate measured on a few blocks is rough), and twice the last round while nothing was
    found. ``eager`` (a single server, whose one scan call stops where the page fills)
    asks for four times that: a spare block costs its posting, a round trip costs more.
    """
    if not found:
        wanted = size * 2
    else:
        wanted = min((limit - found) * scanned * 5 // (found * 4) + 1, 3 * scanned)
    return max(FIRST_BLOCKS, min(wanted * (4 if eager else 1), MAX_BLOCKS))


def _block(member: str) -> tuple[str, int, int]:
    """A posting's task, first seq and line count (``<task>:<seq, 8 hex>:<lines, hex>``)."""
    task_id, first, lines = member.rsplit(":", 2)
    return task_id, int(first, 16), int(lines, 16)


class SearchIndex:
    """Writes the postings at ingest and answers queries."""

    def __init__(
        self,
        redis: Client,
        keys: Keys,
        *,
        tasks: TaskStore,
        logs: LogStore,
        ttl_seconds: int,
        max_postings: int = MAX_POSTINGS_PER_TASK,
    ) -> None:
        self._redis: Any = redis
        self._keys = keys
        self._tasks = tasks
        self._logs = logs
        self._ttl = ttl_seconds
        self._max_postings = max_postings
        self._postings_script = register_script(redis, POSTINGS)
        self._scan_script = register_script(redis, SCAN)
        self._blocks_script = register_script(redis, BLOCKS)
        self._expired_at: dict[str, float] = {}
        # Per task: postings added by this process, and the log's total after its last batch.
        self._written: dict[str, tuple[int, int]] = {}

    def _score(self, task_id: str, now_ms: int) -> int:
        """Minus the task's creation time, or minus a quarter TTL ago if that is later.

        Postings are trimmed by score (``_trim_below``), not one by one: a task still
        logging long after its creation (it waited for an approval) must not have its new
        postings trimmed while its log lives, so it ranks as if created a quarter TTL ago.
        """
        return -max(created_ms(task_id), now_ms - self._ttl * 250)

    def _within_budget(self, task_id: str, count: int, total: int) -> bool:
        """Whether ``task_id`` may add ``count`` more postings in this process (and count them)."""
        used, _ = self._written.pop(task_id, (0, 0))
        if len(self._written) >= _BUDGETS_KEPT:
            del self._written[next(iter(self._written))]
        fits = used + count <= self._max_postings
        # Once a batch does not fit, none after it is posted: the task is past its budget.
        self._written[task_id] = (used + count if fits else self._max_postings, total)
        return fits

    async def add(self, task_id: str, batch: Columns, total: int) -> None:
        """Post ``batch``'s blocks, the log's last lines up to seq ``total``, in one pipeline."""
        # The log cap may have stored only the batch's first lines (then a marker line), or
        # none: when this process wrote the log's previous total, only those are posted.
        stored = len(batch)
        if task_id in self._written:
            stored = min(stored, total - self._written[task_id][1])
        first = total - stored
        postings: dict[str, list[str]] = {}
        count = 0
        blocks = terms_of_blocks(batch.messages[:stored], BLOCK_LINES)
        for lo, terms in zip(range(0, stored, BLOCK_LINES), blocks, strict=True):
            if first + lo < 0:
                continue  # a log that expired under the writer: nothing to point at
            lines = min(BLOCK_LINES, stored - lo)
            member = f"{task_id}:{first + lo:08x}:{lines:x}"
            for term in terms:
                postings.setdefault(term, []).append(member)
                count += 1
        if not self._within_budget(task_id, count, total) or not postings:
            return
        now, now_ms = time.monotonic(), time.time_ns() // 1_000_000
        score = self._score(task_id, now_ms)
        async with self._redis.pipeline(transaction=False) as pipe:
            for term, members in postings.items():
                key = self._keys.postings(term)
                pipe.zadd(key, dict.fromkeys(members, score))
                # The key must outlive its postings (trimmed 1.25 TTLs after their score),
                # and old ones only need trimming now and then: so both are done once per
                # tenth of the TTL per process, with the key's TTL at 1.25 TTLs.
                if now - self._expired_at.get(term, -1e18) > self._ttl / 10:
                    self._expired_at[term] = now
                    pipe.zremrangebyscore(key, self._trim_below(now_ms), "+inf")
                    pipe.expire(key, self._ttl * 5 // 4)
            await pipe.execute()

    def _trim_below(self, now_ms: int) -> int:
        """The lowest score trimmed: a posting lives 1.25 TTLs past its creation score.

        A block's score is at least its write time minus a quarter TTL, and its log lives
        a TTL after its last write, so no posting goes before its lines do.
        """
        return -(now_ms - self._ttl * 1250)

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
        if not query.terms:
            return await self._scan_logs(query, status, since_ms, limit)
        terms = sorted(query.terms)
        keys = [self._keys.postings(t) for t in terms]
        top = f"{-since_ms}" if since_ms else "+inf"
        hits: list[Hit] = []
        statuses: dict[str, bool] = {}
        offset, size, scanned = 0, FIRST_BLOCKS, 0
        eager = not is_cluster(self._redis)
        while offset >= 0 and len(hits) < limit:
            reply = await self._postings_script(
                keys=keys, args=[top, offset, size, EXAMINE_PER_CALL]
            )
            offset = int(reply[0])
            needles = query.needle_args(terms[int(reply[1]) - 1] if len(reply) > 1 else "")
            blocks = [b for b in map(_block, reply[2:]) if created_ms(b[0]) >= since_ms]
            if status is not None:
                blocks = await self._with_status(blocks, status, statuses)
            hits += await self._scan_blocks(blocks, needles, query, limit - len(hits))
            scanned += len(blocks)
            size = next_round(size, scanned, len(hits), limit, eager=eager)
        return hits[:limit]

    async def _with_status(
        self, blocks: list[tuple[str, int, int]], status: TaskStatus, known: dict[str, bool]
    ) -> list[tuple[str, int, int]]:
        """The blocks of tasks in ``status``; ``known`` keeps the answers across rounds."""
        unknown = list(dict.fromkeys(b[0] for b in blocks if b[0] not in known))
        if unknown:
            async with self._redis.pipeline(transaction=False) as pipe:
                for task_id in unknown:
                    pipe.hget(self._keys.task(task_id), "status")
                found: list[str | None] = await pipe.execute()
            known.update((t, s == status.value) for t, s in zip(unknown, found, strict=True))
        return [b for b in blocks if known[b[0]]]

    async def _scan_blocks(
        self,
        blocks: list[tuple[str, int, int]],
        needles: list[str | int],
        query: Query,
        wanted: int,
    ) -> list[Hit]:
        """The hits in ``blocks``, in their order, in one round trip."""
        by_task: dict[str, list[str | int]] = {}
        for task_id, first, lines in blocks:
            by_task.setdefault(task_id, []).extend((first, lines))
        head = [wanted, needles[0], len(needles) - 1, *needles[1:]]
        calls = [(t, [len(spans) // 2, *spans]) for t, spans in by_task.items()]
        if not calls:
            return []
        script = self._blocks_script
        if is_cluster(self._redis):
            # One slot per script: a call per task, all at once.
            replies = await asyncio.gather(
                *(script(keys=[self._keys.logs(t)], args=[*head, *a]) for t, a in calls)
            )
            flats = [reply[0] for reply in replies]
        else:
            keys = [self._keys.logs(t) for t, _ in calls]
            flats = await script(keys=keys, args=[*head, *(x for _, a in calls for x in a)])
        return self._hits(calls, flats, query, wanted)

    async def _scan_logs(
        self, query: Query, status: TaskStatus | None, since_ms: int, limit: int
    ) -> list[Hit]:
        """Needles too short to index: scan every task's log, newest first, until a page."""
        ids: list[str] = await self._redis.zrevrangebyscore(
            self._keys.tasks_by_created(), "+inf", since_ms
        )
        if status is not None:
            found = await self._with_status([(t, 0, 0) for t in ids], status, {})
            ids = [b[0] for b in found]
        hits: list[Hit] = []
        start, size = 0, 1
        while start < len(ids) and len(hits) < limit:
            wanted = limit - len(hits)
            calls = [(t, [wanted, *query.needle_args()]) for t in ids[start : start + size]]
            hits += self._hits(calls, await self._run(self._scan_script, calls), query, wanted)
            start, size = start + size, min(size * 2, TASKS_PER_ROUND)
        return hits[:limit]

    async def _run(self, script: Any, calls: list[tuple[str, list[str | int]]]) -> list[Any]:
        """``script`` on each task's log with its arguments: one round trip, or concurrent calls."""
        if is_cluster(self._redis):
            # A cluster pipeline refuses scripts: one call per task, all at once instead.
            return list(
                await asyncio.gather(*(script(keys=[self._keys.logs(t)], args=a) for t, a in calls))
            )
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id, args in calls:
                await script(keys=[self._keys.logs(task_id)], args=args, client=pipe)
            # Lua numbers (the seqs) come back as ints, strings as str.
            replies: list[Any] = await pipe.execute()
        return replies

    @staticmethod
    def _hits(
        calls: list[tuple[str, list[str | int]]], replies: list[Any], query: Query, wanted: int
    ) -> list[Hit]:
        """Hits from the scripts' flat replies (seq, timestamp, stream, message), in order."""
        hits: list[Hit] = []
        for (task_id, _), flat in zip(calls, replies, strict=True):
            for i in range(0, min(len(flat), (wanted - len(hits)) * 4), 4):
                seq, ts, stream, message = flat[i : i + 4]
                hits.append(Hit(task_id, int(seq), ts, stream, query.snippet(message)))
        return hits
