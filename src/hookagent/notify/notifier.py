"""The notifier: consumes the outbox and hands each event to every configured channel.

It runs beside the workers (``hookagent up`` and ``hookagent worker``), never inside an
agent's run, so a slow or dead channel cannot slow or fail a task. Each event is acked only
after every channel delivered it or gave up; a notifier that dies leaves its event pending
and another one takes it over once the lease lapses (XAUTOCLAIM). A channel that answers
429 or 5xx is retried with backoff (its ``Retry-After`` wins) up to
``HOOKAGENT_NOTIFY_MAX_ATTEMPTS`` tries; then the task's log says so and the others go on.

Delivery is at least once: each channel marks an event sent in its per-task state right
after the service accepted it, so a redelivered event is skipped, except when the notifier
died between the service's answer and that mark (then it is sent twice; edits in place
make that harmless for Slack's parent message and the source comments).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from functools import partial

from hookagent.errors import OutboundError, TaskNotFound
from hookagent.models import LogStream, Task, TaskStatus, one_line, utc_iso
from hookagent.notify.base import Delivery, Sender
from hookagent.notify.senders import build_senders
from hookagent.notify.slack import SlackApp
from hookagent.race import race
from hookagent.redact import Redactor
from hookagent.secret_values import build_redactor
from hookagent.settings import Settings
from hookagent.store import (
    NewLine,
    OutboxEvent,
    Store,
    StoreConnectionError,
    StoreReplyError,
    StoreTimeoutError,
)

log = logging.getLogger(__name__)

# A channel's 429 or 5xx without Retry-After is retried after 1, 2, 4 … s, at most a minute
# apart; HOOKAGENT_NOTIFY_MAX_ATTEMPTS sets how long that goes on (6 tries: ~30 s), so the
# interval itself needs no setting.
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
# Redis errors: retried from 0.1 s, doubling up to this, so a recovered Redis is seen soon.
REDIS_BACKOFF_MAX_S = 5.0
# An event whose handling crashed the notifier this often (a bug, not a channel) is dropped.
MAX_EVENT_DELIVERIES = 5
RUNNING_TASKS_SCANNED = 200
SNIPPET_LINES = 15


class _Stopping(Exception):
    """Shutdown asked while an event waited for its retry: leave it pending."""


class _TakenOver(Exception):
    """Another notifier took the event over after our lease lapsed: leave it to them."""


def notifier_name() -> str:
    """A consumer name unique to this notifier: host, pid, random suffix."""
    return f"notifier-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Notifier:
    """One outbox consumer; its channels come from the settings unless given."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        redactor: Redactor | None = None,
        senders: list[Sender] | None = None,
    ) -> None:
        self._store = store
        self._outbox = store.outbox
        self._settings = settings
        self._redactor = redactor or build_redactor(settings)
        self._given = senders
        self.name = notifier_name()
        self.acked = 0
        self._acked_changed = asyncio.Condition()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver events (and snippets of running tasks) until ``stop`` is set."""
        senders = self._given
        if senders is None:
            senders = build_senders(self._settings, self._store, self._redactor)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._consume(senders, stop))
                slack = next((s for s in senders if isinstance(s, SlackApp)), None)
                if slack is not None:
                    group.create_task(self._snippets(slack, stop))
        finally:
            if self._given is None:
                for sender in senders:
                    await sender.aclose()

    async def _consume(self, senders: list[Sender], stop: asyncio.Event) -> None:
        # Well under redis-py's default socket timeout (5 s), which a longer block would hit.
        block_ms = max(100, min(2000, self._outbox.lease_ms // 2))
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._outbox.ensure_group()
                which, events = await race(
                    self._outbox.read(self.name, block_ms=block_ms, count=1), stop.wait()
                )
                if which == 1:
                    return
                for event in events:
                    await self.handle(event, senders, stop)
                backoff = 0.1
            except _Stopping:
                return
            except _TakenOver as exc:
                log.info("notifier %s: %s", self.name, exc)
            except (StoreConnectionError, StoreTimeoutError, StoreReplyError, OSError) as exc:
                log.warning("notifier %s: Redis error %r; retry in %.1fs", self.name, exc, backoff)
                await _wait(stop, backoff)
                backoff = min(backoff * 2, REDIS_BACKOFF_MAX_S)

    async def handle(self, event: OutboxEvent, senders: list[Sender], stop: asyncio.Event) -> None:
        """Give ``event`` to every channel that wants it, then ack it."""
        if event.deliveries > MAX_EVENT_DELIVERIES:
            crashed = event.deliveries - 1
            text = f"notifications of {event.name} dropped after {crashed} crashed attempts"
            await self._say(event, text + " (see the server log)")
            await self._ack(event)
            return
        try:
            task = await self._store.tasks.get(event.task_id)
        except TaskNotFound:
            await self._ack(event)  # expired: nobody is left to tell
            return
        for sender in senders:
            if sender.wants(event, task):
                await self._deliver(sender, event, task, stop)
        await self._ack(event)

    async def _ack(self, event: OutboxEvent) -> None:
        await self._outbox.ack(event)
        async with self._acked_changed:
            self.acked += 1
            self._acked_changed.notify_all()

    async def wait_acked(self, count: int) -> None:
        """Wait until this notifier has acked ``count`` events in all."""
        async with self._acked_changed:
            await self._acked_changed.wait_for(lambda: self.acked >= count)

    async def _deliver(
        self, sender: Sender, event: OutboxEvent, task: Task, stop: asyncio.Event
    ) -> None:
        state = await self._outbox.state(task.task_id, sender.channel)
        mark = f"sent:{event.event_id}"
        if mark in state:
            return  # redelivered after a crash: this channel already has it
        save = partial(self._outbox.save_state, task.task_id, sender.channel)
        delivery = Delivery(event=event, task=task, state=state, save=save)
        attempts = self._settings.notify_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                await sender.deliver(delivery)
            except OutboundError as exc:
                if not exc.retryable or attempt == attempts:
                    tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                    what = f"{sender.channel} notification of {event.name}"
                    await self._say(event, f"{what} failed after {tries}: {exc.message}")
                    await delivery.remember(**{mark: "gave up"})
                    return
                delay = exc.retry_after
                if delay is None:
                    delay = min(BACKOFF_BASE_S * 2 ** (attempt - 1), BACKOFF_MAX_S)
                log.info("%s: %s; retry %d in %.1fs", sender.channel, exc.message, attempt, delay)
                await self._pause(event, delay, stop)
            else:
                await delivery.remember(**{mark: "1"})
                return

    async def _pause(self, event: OutboxEvent, delay: float, stop: asyncio.Event) -> None:
        """Wait ``delay`` before a retry, keeping the event's lease; a stop ends the wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        renew_every = self._outbox.lease_ms / 3000
        while True:
            if not await self._outbox.renew(event, self.name):
                raise _TakenOver(f"{event.event_id} was taken over by another notifier")
            left = deadline - loop.time()
            if left <= 0:
                return
            if await _wait(stop, min(left, renew_every)):
                raise _Stopping

    async def _say(self, event: OutboxEvent, text: str) -> None:
        """A ``[system]`` line in the task's log (unfenced: it is about the task, not a run)."""
        message = "[system] " + one_line(self._redactor.redact(text))
        log.warning("task %s: %s", event.task_id, message)
        with contextlib.suppress(TaskNotFound):  # the task expired: the server log has it
            await self._store.logs.append(
                event.task_id, [NewLine(utc_iso(), LogStream.SYSTEM.value, message)]
            )

    async def _snippets(self, slack: SlackApp, stop: asyncio.Event) -> None:
        """Every interval, the new log lines of each executing task in its Slack thread."""
        interval = self._settings.slack_snippet_interval
        tick = min(max(interval / 2, 0.1), 30.0)
        while not await _wait(stop, tick):
            try:
                running = await self._store.tasks.list(
                    status=TaskStatus.EXECUTING, limit=RUNNING_TASKS_SCANNED
                )
                for task in running:
                    await self._snippet(slack, task, interval)
            except (StoreConnectionError, StoreTimeoutError, OSError) as exc:
                log.warning("notifier %s: snippets paused: %r", self.name, exc)
            except OutboundError as exc:
                # Best effort: the next interval posts what is new then.
                log.warning("notifier %s: snippet not posted: %s", self.name, exc.message)

    async def _snippet(self, slack: SlackApp, task: Task, interval: float) -> None:
        state = await self._outbox.state(task.task_id, slack.channel)
        if "ts" not in state:
            return
        if not await self._outbox.snippet_due(task.task_id, slack.channel, interval):
            return
        total = await self._store.logs.total(task.task_id)
        since = max(int(state.get("snippet_seq", "0")), total - SNIPPET_LINES)
        entries, _ = await self._store.logs.read(task.task_id, offset=since, limit=SNIPPET_LINES)
        if not entries:
            return
        await slack.snippet(task, state, [entry.message for entry in entries])
        await self._outbox.save_state(
            task.task_id, slack.channel, {"snippet_seq": str(entries[-1].seq + 1)}
        )


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``stop``; True when it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()
