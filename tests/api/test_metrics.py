"""``/metrics``: Prometheus text with numbers read from Redis, written by real workers."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hookagent.agents import build_agent
from hookagent.models import NewTask, Phase, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker import Worker
from tests.helpers import FIXTURES, REPO, fake_agent

SEED = (FIXTURES / "sentry-seed-example.json").read_bytes()
JSON = {"content-type": "application/json"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    """Every sample of ``/metrics``, by name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value."""
    return samples[(name, frozenset(labels.items()))]


async def test_queue_gauges_count_waiting_jobs_and_their_age(
    client: httpx.AsyncClient, store: Store
) -> None:
    new = NewTask(source="sentry", repository=REPO, title="t", prompt="p")
    for _ in range(3):
        await store.tasks.create(new)
    await store.jobs.ensure_group()
    samples = await scrape(client)
    assert value(samples, "hookagent_queue_depth") == 3
    assert value(samples, "hookagent_tasks_total", status="queued") == 3
    assert value(samples, "hookagent_runs_in_progress") == 0
    assert 0 <= value(samples, "hookagent_queue_oldest_job_age_seconds") < 60
    # A job a worker took is running, no longer waiting.
    assert await store.jobs.claim("w", block_ms=100) is not None
    assert value(await scrape(client), "hookagent_queue_depth") == 2


async def test_webhooks_are_counted_by_source_and_outcome(client: httpx.AsyncClient) -> None:
    assert (await client.post("/webhooks/sentry", content=SEED, headers=JSON)).status_code == 202
    assert (
        await client.post("/webhooks/sentry", content=b'{"id": ', headers=JSON)
    ).status_code == 400
    plain = {"content-type": "text/plain"}
    assert (await client.post("/webhooks/sentry", content=SEED, headers=plain)).status_code == 415
    # An unknown source is a 404 and no label of its own.
    assert (await client.post("/webhooks/nope", content=SEED, headers=JSON)).status_code == 404
    samples = await scrape(client)
    assert value(samples, "hookagent_webhooks_total", source="sentry", outcome="created") == 1
    assert value(samples, "hookagent_webhooks_total", source="sentry", outcome="invalid") == 2
    assert not any(dict(labels).get("source") == "nope" for _, labels in samples)


async def test_a_worker_run_adds_log_lines_and_a_phase_duration(
    client: httpx.AsyncClient, store: Store, settings: Settings
) -> None:
    own = settings.model_copy(update={"agent_command": fake_agent("lines", "40")})
    worker = Worker(store=store, settings=own, agent=build_agent(own))
    task = await store.tasks.create(NewTask(source="jira", repository=REPO, title="t", prompt="p"))
    before = await store.metrics.log_seq(task.task_id)  # the creation entry: not a worker's
    await store.jobs.ensure_group()
    job = await store.jobs.claim(worker.name, block_ms=1000)
    assert job is not None
    # The whole job, as the worker loop runs it: metrics are written before it returns.
    await worker.process(job)
    assert (await store.tasks.get(task.task_id)).status is TaskStatus.PENDING_APPROVAL
    lines = await store.metrics.log_seq(task.task_id) - before
    samples = await scrape(client)
    # Every line the attempt wrote (40 of the agent's, the worker's own, status entries).
    assert lines > 40
    assert value(samples, "hookagent_log_lines_total") == lines
    count = value(samples, "hookagent_phase_duration_seconds_count", phase="plan")
    assert count == 1
    assert value(samples, "hookagent_phase_duration_seconds_bucket", phase="plan", le="+Inf") == 1
    assert value(samples, "hookagent_phase_duration_seconds_count", phase="execute") == 0
    assert value(samples, "hookagent_queue_depth") == 0


async def test_cost_and_histogram_buckets_add_up(client: httpx.AsyncClient, store: Store) -> None:
    await store.metrics.add_cost(0.25)
    await store.metrics.add_cost(0.5)
    for seconds in (0.5, 3, 3, 4000):
        await store.metrics.observe_phase(Phase.EXECUTE, seconds)
    samples = await scrape(client)
    assert value(samples, "hookagent_cost_usd_total") == 0.75
    bucket = "hookagent_phase_duration_seconds_bucket"
    assert value(samples, bucket, phase="execute", le="1.0") == 1
    assert value(samples, bucket, phase="execute", le="5.0") == 3
    assert value(samples, bucket, phase="execute", le="3600.0") == 3
    assert value(samples, bucket, phase="execute", le="+Inf") == 4
    assert value(samples, "hookagent_phase_duration_seconds_sum", phase="execute") == 4006.5
    assert value(samples, "hookagent_notification_backlog") == 0
