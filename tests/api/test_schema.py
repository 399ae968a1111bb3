"""Schemathesis against a real server's ``/openapi.json``: no 5xx, every answer as declared."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest

from hookagent.api.errors import ErrorBody
from hookagent.models import Action, NewTask, TaskStatus
from hookagent.store import Store
from tests.api.test_auth import ADMIN, live, secured
from tests.conftest import RunWorker
from tests.helpers import move_to

__all__ = ["live", "secured"]  # fixtures, imported to be used here

# Per operation; with the examples and coverage phases this is a few thousand requests.
MAX_EXAMPLES = 20
# These two stream until the client leaves (a follower of a running task, the board's
# events): a generated request there would hold its worker until the request timeout.
# The streams have tests of their own (test_stream.py, test_board.py).
ENDLESS = ("/tasks/{task_id}/logs/stream", "/tasks/events")
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


async def seeded_task(store: Store) -> str:
    """A task waiting for approval with a plan and log lines: the real data paths hit."""
    new = NewTask(source="sentry", repository="acme/payments-api", title="Boom", prompt="ctx")
    task_id = (await store.tasks.create(new)).task_id
    await move_to(store, task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "guard it"})
    return task_id


def config(path: Path, task_id: str) -> Path:
    """A schemathesis.toml binding every ``task_id`` path parameter to the seeded task.

    A long-poll's ``wait`` (up to 60 s, valid) is pinned to 0 s: otherwise a generated
    ``follow=true&wait=59`` holds the request past any sane client timeout, by design.
    """
    path.write_text(f'[parameters]\n"path.task_id" = "{task_id}"\n"query.wait" = 0\n')
    return path


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_the_server_answers_as_its_openapi_says(
    live: str, store: Store, tmp_path: Path, start_worker: RunWorker
) -> None:
    start_worker()  # /readyz answers 200 only with a live worker; it also runs what is queued
    task_id = await seeded_task(store)
    report, har = tmp_path / "report.json", tmp_path / "requests.har"
    argv = [
        *(sys.executable, "-m", "schemathesis.cli"),
        *("--config-file", str(config(tmp_path / "schemathesis.toml", task_id))),
        *("run", f"http://{live}/openapi.json"),
        *("--header", f"Authorization: Bearer {ADMIN}"),
        *("--checks", CHECKS),
        *("--max-examples", str(MAX_EXAMPLES)),
        # One worker: with two, hypothesis 6 on Python 3.11 trips over its own AST cache
        # ("AST constructor recursion depth mismatch"), and the client is the bottleneck anyway.
        *("--workers", "1", "--seed", "1", "--no-color", "--request-timeout", "10"),
        *(arg for path in ENDLESS for arg in ("--exclude-path", path)),
        *("--report", "json,har", "--report-json-path", str(report)),
        *("--report-har-path", str(har)),
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )  # its cache directory goes in cwd
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=200)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    summary = json.loads(report.read_text())
    assert summary["failures"] == [] and summary["errors"] == [], text
    operations = summary["operations"]
    assert operations["tested"] == operations["selected"] == operations["total"] - len(ENDLESS)
    requests = len(json.loads(har.read_text())["log"]["entries"])
    # The README's "Security and reliability" figures come from this line (run with -s).
    print(f"schemathesis: {operations['tested']} operations, {requests} requests")  # noqa: T201


async def test_a_422_is_declared_with_the_body_the_server_sends(client: httpx.AsyncClient) -> None:
    """Regression: /openapi.json declared FastAPI's ``{"detail": [...]}`` for every 422."""
    spec = (await client.get("/openapi.json")).json()
    declared = [
        op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
        for item in spec["paths"].values()
        for op in item.values()
        if "422" in op["responses"]
    ]
    assert declared and set(declared) == {"#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in json.dumps(spec)
    answer = await client.get("/search", params={"q": "x", "since": "null"})
    assert answer.status_code == 422
    assert ErrorBody.model_validate(answer.json()).error == "invalid_payload"
    assert set(spec["components"]["schemas"]["ErrorBody"]["required"]) == {"error"}


async def test_the_task_declares_its_checks(client: httpx.AsyncClient, store: Store) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    checks = schemas["TaskDetail"]["properties"]["checks"]
    assert checks["additionalProperties"] == {"$ref": "#/components/schemas/CheckResult"}
    assert schemas["CheckResult"]["enum"] == ["passed", "failed", "not configured"]
    task_id = await seeded_task(store)
    assert (await client.get(f"/tasks/{task_id}")).json()["checks"] == {}
    await store.tasks.advance(
        task_id, Action.APPROVE, fields={"checks": json.dumps({"test": "not configured"})}
    )
    assert (await client.get(f"/tasks/{task_id}")).json()["checks"] == {"test": "not configured"}


async def test_the_task_declares_its_rounds(client: httpx.AsyncClient) -> None:
    """The one change to the schema here: ``TaskDetail.rounds`` and the three models it uses."""
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    rounds = schemas["TaskDetail"]["properties"]["rounds"]
    assert rounds["$ref"] == "#/components/schemas/TaskRounds"
    assert set(schemas["TaskRounds"]["properties"]) == {
        "ran", "max_rounds", "finished", "running", "running_count", "pending", "pending_count",
    }  # fmt: skip
    finished = schemas["ReviewRound"]["properties"]
    assert finished["kind"]["enum"] == ["review", "ci"]
    assert finished["test"]["anyOf"][0] == {"$ref": "#/components/schemas/CheckResult"}
    assert set(schemas["RoundItem"]["required"]) == {"kind"}
