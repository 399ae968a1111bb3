"""Fixtures for notification tests: notifier loops and the Slack signing helper."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from hookagent.notify import Notifier
from hookagent.settings import Settings
from hookagent.store import Store

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def slack_headers(body: bytes, *, secret: str = SIGNING_SECRET, age: float = 0) -> dict[str, str]:
    """Headers Slack sends with ``body``: a timestamp ``age`` seconds old and its signature."""
    timestamp = str(int(time.time() - age))
    base = b"v0:" + timestamp.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature,
    }


@dataclass
class RunningNotifier:
    """A notifier loop running as an asyncio task; ``kill`` cancels it like a dead process."""

    notifier: Notifier
    task: asyncio.Task[None]

    async def kill(self) -> None:
        """Cancel the loop wherever it is (mid-delivery too) and wait for it to end."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


StartNotifier = Callable[[Settings], RunningNotifier]


@pytest.fixture
async def start_notifier(store: Store) -> AsyncIterator[StartNotifier]:
    """Starts notifier loops with the given settings; stops them after the test."""
    stop = asyncio.Event()
    running: list[RunningNotifier] = []

    def start(own: Settings) -> RunningNotifier:
        notifier = Notifier(store=Store.build(store.redis, own), settings=own)
        task = asyncio.create_task(notifier.run(stop))
        running.append(RunningNotifier(notifier, task))
        return running[-1]

    yield start
    stop.set()
    for each in running:
        await asyncio.wait([each.task], timeout=10)
        await each.kill()
