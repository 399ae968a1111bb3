"""Prometheus exposition: a collector over a store snapshot, and the webhook counter.

Every number comes from Redis at scrape time (``store/metrics.py``), so each API process
answers with the same totals however many there are and wherever the workers run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hookagent.api.errors import ACCEPTED, INTERNAL_ERROR, OK, is_server_error, status_of
from hookagent.errors import NotAnApprover, QueueFull, RateLimited, SignatureError
from hookagent.sources.table import SOURCES
from hookagent.store import MetricsSnapshot, Store, StoreError

log = logging.getLogger(__name__)

WEBHOOK_SOURCES = frozenset(SOURCES)  # the routes the one webhook handler serves
# The answers a webhook can get, grouped into few label values (the 4xx rest is "invalid").
_OUTCOMES = {
    ACCEPTED: "created",
    OK: "handled",
    status_of(SignatureError): "unauthorized",
    status_of(NotAnApprover): "forbidden",
    status_of(RateLimited): "rate_limited",
    status_of(QueueFull): "queue_full",
}


class SnapshotCollector(Collector):
    """Yields the ``hookagent_*`` metric families of one snapshot."""

    def __init__(self, snap: MetricsSnapshot, *, live_workers: int) -> None:
        self._snap = snap
        self._live_workers = live_workers

    def collect(self) -> Iterator[Metric]:
        """Every family, in a stable order."""
        snap = self._snap
        yield _gauge("queue_depth", "Jobs waiting for a worker.", snap.queue_depth)
        yield _gauge(
            "queue_oldest_job_age_seconds",
            "Age of the oldest job no worker has taken yet (0 when none waits).",
            snap.oldest_job_age_s,
        )
        yield _gauge(
            "runs_in_progress", "Tasks being planned or executed now.", snap.runs_in_progress
        )
        yield _gauge(
            "workers_live", "Worker loops that sent a heartbeat recently.", self._live_workers
        )
        # A gauge named *_total on purpose: it is the size of each status index, which falls
        # as tasks move on, and the issue asked for this name.
        tasks = GaugeMetricFamily(
            "hookagent_tasks_total", "Tasks by current status.", labels=["status"]
        )
        for status, count in snap.tasks.items():
            tasks.add_metric([status.value], count)
        yield tasks
        yield CounterMetricFamily(
            "hookagent_log_lines", "Log lines stored by workers.", value=snap.log_lines
        )
        hooks = CounterMetricFamily(
            "hookagent_webhooks",
            "Webhook deliveries by source and outcome.",
            labels=["source", "outcome"],
        )
        for (source, outcome), count in sorted(snap.webhooks.items()):
            hooks.add_metric([source, outcome], count)
        yield hooks
        phases = HistogramMetricFamily(
            "hookagent_phase_duration_seconds", "Duration of phase runs.", labels=["phase"]
        )
        for phase, hist in snap.phases.items():
            # Labelled the way Prometheus clients write bounds: 1.0, 5.0, +Inf.
            buckets = [(_bound(le), count) for le, count in hist.buckets]
            phases.add_metric([phase], buckets=buckets, sum_value=hist.total)
        yield phases
        yield CounterMetricFamily(
            "hookagent_tasks_merged", "Change requests of tasks merged.", value=snap.merged
        )
        yield CounterMetricFamily(
            "hookagent_tasks_closed_unmerged",
            "Change requests of tasks closed without merging.",
            value=snap.closed,
        )
        yield CounterMetricFamily(
            "hookagent_review_rounds",
            "Follow-up rounds on change requests, counted when the request ended.",
            value=snap.review_rounds,
        )
        merge = snap.time_to_merge
        yield HistogramMetricFamily(
            "hookagent_time_to_merge_seconds",
            "Time from opening a change request to its merge.",
            buckets=[(_bound(le), count) for le, count in merge.buckets],
            sum_value=merge.total,
        )
        yield _gauge(
            "notification_backlog",
            "Notification events not yet delivered (outbox).",
            snap.outbox_backlog,
        )
        yield CounterMetricFamily(
            "hookagent_cost_usd", "Agent cost reported by the agents, in USD.", value=snap.cost_usd
        )
        waits = CounterMetricFamily(
            "hookagent_agent_quota_waits",
            "Tasks that started waiting for their agent's model quota, by agent.",
            labels=["agent"],
        )
        for agent, count in sorted(snap.quota_waits.items()):
            waits.add_metric([agent], count)
        yield waits


def _bound(le: str) -> str:
    return le if le == "+Inf" else str(float(le))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"hookagent_{name}", doc, value=value)


async def exposition(store: Store, *, ready_worker_age: float) -> bytes:
    """The Prometheus text of the current snapshot."""
    snap = await store.metrics.snapshot()
    live = await store.workers.count_live(ready_worker_age)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap, live_workers=live))
    return generate_latest(registry)


def webhook_outcome(status: int) -> str:
    """The ``outcome`` label of a webhook answered with ``status``."""
    if status in _OUTCOMES:
        return _OUTCOMES[status]
    return "error" if is_server_error(status) else "invalid"


class WebhookCounter:
    """ASGI middleware counting ``POST /webhooks/<source>`` answers in Redis, by outcome."""

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self._state = state  # the app's: its store exists once the lifespan ran

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; count it by the status it was answered with."""
        source = _source(scope)
        if source is None:
            await self.app(scope, receive, send)
            return
        status = INTERNAL_ERROR  # an exception escaping the app is answered so outside us

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            await count_webhook(self._state.store, source, webhook_outcome(status))


def _source(scope: Scope) -> str | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    parts = str(scope["path"]).strip("/").split("/")
    # Only the known sources: a label per made-up path would let anyone grow the hash.
    if len(parts) == 2 and parts[0] == "webhooks" and parts[1] in WEBHOOK_SOURCES:
        return parts[1]
    return None


async def count_webhook(store: Store, source: str, outcome: str) -> None:
    """Count one delivery answered with ``outcome``; a failure to count is only logged."""
    try:
        await store.metrics.count_webhook(source, outcome)
    except (StoreError, OSError) as exc:
        # The delivery was answered already; a lost count must not turn into an error.
        log.warning("could not count a %s webhook: %r", source, exc)
