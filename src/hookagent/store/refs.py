"""Dedupe marks and links: webhook deliveries seen, and outside objects mapped to tasks.

A delivery mark remembers a delivery id (GitHub ``X-GitHub-Delivery``, Jira's webhook id,
Sentry issue + action) for the dedupe TTL; a ref maps an outside object (a Sentry issue, a
Jira key, a GitHub issue or pull request) to the task it started, for the task's TTL. A new
task claims its marks once it exists, before it is sealed (``TaskStore.create_marked``).
A command mark remembers the source's own comment or action id (GitHub ``comment.id``,
Slack ``action_ts``) for as long as a link lives: the delivery header is the sender's to
choose, so a replay under a new one is caught by the comment's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookagent.store.client import Client
from hookagent.store.keys import Keys


@dataclass(frozen=True, slots=True)
class Marks:
    """The marks a new task claims, and what intake saw in them before (None: absent)."""

    source: str
    delivery: str | None = None
    ref: str | None = None
    seen_delivery: str | None = None
    seen_ref: str | None = None


class RefStore:
    """Reads and writes delivery marks and object → task links."""

    def __init__(
        self, redis: Client, keys: Keys, *, dedupe_ttl_seconds: int, link_ttl_seconds: int
    ) -> None:
        self._redis: Any = redis  # replies are str (decode_responses=True)
        self._keys = keys
        self._dedupe_ttl = dedupe_ttl_seconds
        self._link_ttl = link_ttl_seconds

    async def seen(
        self, source: str, *, delivery: str | None, ref: str | None
    ) -> tuple[str | None, str | None]:
        """The task a delivery id and an object currently point to (None where unmarked)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            if delivery:
                pipe.get(self._keys.delivery(source, delivery))
            if ref:
                pipe.get(self._keys.ref(source, ref))
            replies: list[str | None] = list(await pipe.execute())
        by_delivery = replies.pop(0) if delivery else None
        by_ref = replies.pop(0) if ref else None
        return by_delivery, by_ref

    async def mark_delivery(self, source: str, delivery: str, value: str) -> None:
        """Point a delivery id at ``value`` (a task id) for the dedupe TTL."""
        await self._redis.set(self._keys.delivery(source, delivery), value, ex=self._dedupe_ttl)

    async def claim_command(
        self, source: str, *, delivery: str | None, event_id: str | None, verb: str
    ) -> str | None:
        """Mark a command's delivery and comment as used; what was seen before, else None.

        Both or neither: a mark this call set is taken back when the other was seen.
        """
        k = self._keys
        marks = [(k.delivery(source, delivery), self._dedupe_ttl, "delivery")] if delivery else []
        if event_id:
            marks.append((k.command(source, event_id), self._link_ttl, "comment or action"))
        if not marks:
            return None
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, ttl, _ in marks:
                pipe.set(key, verb, nx=True, ex=ttl)
            taken: list[bool | None] = list(await pipe.execute())
        seen = [what for (_, _, what), ok in zip(marks, taken, strict=True) if not ok]
        if not seen:
            return None
        mine = [key for (key, _, _), ok in zip(marks, taken, strict=True) if ok]
        if mine:
            await self._redis.delete(*mine)
        return f"{seen[0]} seen before"

    async def forget_command(
        self, source: str, *, delivery: str | None, event_id: str | None
    ) -> None:
        """Drop a command's marks, so the sender's retry of a failed delivery is not a duplicate."""
        keys = [self._keys.delivery(source, delivery)] if delivery else []
        keys += [self._keys.command(source, event_id)] if event_id else []
        if keys:
            await self._redis.delete(*keys)

    async def task_for(self, source: str, ref: str) -> str | None:
        """The task an outside object is linked to."""
        task_id: str | None = await self._redis.get(self._keys.ref(source, ref))
        return task_id

    async def link(self, source: str, ref: str, task_id: str) -> None:
        """Link an outside object (e.g. the pull request a task opened) to the task."""
        await self._redis.set(self._keys.ref(source, ref), task_id, ex=self._link_ttl)
