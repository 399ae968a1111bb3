"""The client commands as people use them: signed submits, help, pipes, ``--json``, watch."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hookagent.cli.main import _parser
from hookagent.cli.signing import WEBHOOK_SECRETS, signature_headers
from hookagent.models import NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.helpers import FIXTURES, fake_agent, just_written, move_to, wait_status
from tests.processes import free_port, process_env, start_server
from tests.review_rounds import PENDING_BODY, PUSHED, REJECTED, seed_rounds

SECRETS = {
    setting: f"{source}-webhook-secret-0123456789" for source, setting in WEBHOOK_SECRETS.items()
}
# Who may approve by comment: the authors of the recorded comments.
APPROVERS = {
    "HOOKAGENT_GITHUB_APPROVERS": "lee-lead",
    "HOOKAGENT_GITLAB_APPROVERS": "lee-lead",
    "HOOKAGENT_LINEAR_APPROVERS": "lee@example.com",
}
# One delivery a source turns into a task.
NEW_TASK = {
    "sentry": "sentry-event-alert.json",
    "jira": "jira-issue-created.json",
    "github": "github-issues-labeled.json",
    "gitlab": "gitlab-issue-labeled.json",
    "linear": "linear-issue-create.json",
}


def hookagent(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, its stdout a pipe (not a terminal)."""
    bare = {k: v for k, v in process_env(Settings()).items() if not k.startswith("HOOKAGENT_")}
    return subprocess.run(
        [sys.executable, "-m", "hookagent.cli", *args],
        capture_output=True,
        text=True,
        env=bare | env,
        timeout=60,
    )


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """``hookagent server`` on the test's Redis, every source's webhook secret set."""
    env = process_env(settings, HOOKAGENT_DEFAULT_REPO="acme/payments-api", **SECRETS, **APPROVERS)
    running = start_server(env, port := free_port())
    yield f"http://127.0.0.1:{port}"
    running.stop()


def test_every_option_and_argument_has_help() -> None:
    missing = []
    parsers = [("hookagent", _parser())]
    while parsers:
        name, parser = parsers.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
            elif not action.help:
                missing.append(f"{name} {action.option_strings or action.dest}")
    assert missing == []


@pytest.mark.parametrize("source", sorted(NEW_TASK))
async def test_submit_signs_with_the_sources_secret(
    server: str, store: Store, source: str, tmp_path: Path
) -> None:
    setting = WEBHOOK_SECRETS[source]
    file = str(FIXTURES / NEW_TASK[source])
    unsigned = hookagent("submit", source, file, "--url", server)
    assert unsigned.returncode == 1
    [line] = unsigned.stderr.splitlines()
    assert line.startswith("error: 401: ") and f"set {setting} to the server's value" in line

    signed = hookagent("submit", source, file, "--url", server, **{setting: SECRETS[setting]})
    assert signed.returncode == 0, signed.stderr
    created = json.loads(signed.stdout)
    assert (await store.tasks.get(created["task_id"])).source == source
    # --secret instead of the environment, on a copy of the payload (a new delivery).
    again = hookagent("submit", source, file, "--url", server, "--secret", SECRETS[setting])
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(
    ("source", "comment"),
    [
        ("github", "github-issue-comment.json"),
        ("gitlab", "gitlab-note-approve.json"),
        ("linear", "linear-comment-approve.json"),
    ],
)
async def test_a_signed_submit_can_send_a_command(
    server: str, store: Store, source: str, comment: str, tmp_path: Path
) -> None:
    setting = WEBHOOK_SECRETS[source]
    env = {setting: SECRETS[setting]}
    created = hookagent("submit", source, str(FIXTURES / NEW_TASK[source]), "--url", server, **env)
    task_id = json.loads(created.stdout)["task_id"]
    await move_to(store, task_id, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    # Written now: a decision written before the plan was ready decides nothing.
    payload = just_written(json.loads((FIXTURES / comment).read_text()))
    if source == "github":  # the recorded comment is on another issue than the labelled one
        payload["issue"]["number"] = 412
    command = tmp_path / comment
    command.write_text(json.dumps(payload))
    approve = hookagent("submit", source, str(command), "--url", server, **env)
    assert approve.returncode == 0, approve.stderr
    assert (await store.tasks.get(task_id)).status is TaskStatus.APPROVED, approve.stdout


async def test_piped_output_keeps_long_values_and_json_is_the_apis(
    server: str, store: Store
) -> None:
    title = "Checkout total divides by zero " + "when the cart holds no items " * 8
    new = NewTask(source="sentry", repository="acme/payments-api", title=title, prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    listed = hookagent("tasks", "--url", server)
    assert listed.returncode == 0, listed.stderr
    [row] = [line for line in listed.stdout.splitlines() if task_id in line]
    assert title.strip() in row and "…" not in listed.stdout
    assert " change " in row  # the task's kind: a change, not a review

    for args, path in (
        (("tasks",), "/tasks/?limit=50"),
        (("status", task_id), f"/tasks/{task_id}/status"),
        (("search", "divides"), "/search?q=divides&limit=50"),
    ):
        printed = hookagent(*args, "--json", "--url", server)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout == httpx.get(f"{server}{path}").text + "\n"
    cancelled = hookagent("cancel", task_id, "--json", "--url", server)
    assert json.loads(cancelled.stdout)["status"] == "cancelled"


async def test_watch_in_a_pipe_prints_each_change_as_it_happens(
    server: str, store: Store, start_worker: RunWorker, settings: Settings
) -> None:
    start_worker(agent_command=fake_agent("slow", "40", "0.25"))
    body = (FIXTURES / "sentry-event-alert.json").read_bytes()
    secret = SECRETS[WEBHOOK_SECRETS["sentry"]]
    headers = {"content-type": "application/json", **signature_headers("sentry", body, secret)}
    response = httpx.post(f"{server}/webhooks/sentry", content=body, headers=headers)
    task_id = response.json()["task_id"]
    await wait_status(store, task_id, {TaskStatus.DISCOVERING})
    watch = subprocess.Popen(
        [sys.executable, "-m", "hookagent.cli", "watch", "--url", server],
        stdout=subprocess.PIPE,
        text=True,
        env=process_env(settings),
    )
    assert watch.stdout is not None
    # Read in a thread: the worker runs on this event loop.
    readline = watch.stdout.readline
    try:
        async with asyncio.timeout(30):
            assert (await asyncio.to_thread(readline)).split("\t")[0] == "task"
            # Read while the agent still runs: the line came with the change, not at exit.
            running = await asyncio.to_thread(readline)
            assert running.startswith(f"{task_id}\tdiscovering\t")
            assert (await store.tasks.get(task_id)).status is TaskStatus.DISCOVERING
            # Progress changes (the phase once saved) each get a line, then the end does.
            line = running
            while line.startswith(f"{task_id}\tdiscovering\t"):
                line = await asyncio.to_thread(readline)
            assert line == f"{task_id}\tpending_approval\n"
    finally:
        watch.kill()
        watch.wait()
        watch.stdout.close()


async def test_status_shows_the_review_rounds_as_plain_text(server: str, store: Store) -> None:
    new = NewTask(source="github", repository="acme/payments-api", title="t", prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    hostile = "\x1b]0;owned\x07\x1b[2J[bold red]boom[/] <img src=x onerror=alert(1)>\nline 2"
    await seed_rounds(store, task_id, inline_body=hostile)
    shown = hookagent("status", task_id, "--url", server)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert task_id in lines[0] and "completed" in lines[0]
    start = lines.index("review rounds: 2 of at most 5 ran")
    first, second = lines[start + 1].split("  "), lines[start + 4].split("  ")
    assert (first[1], first[2].endswith("Z")) == ("round 1", True)
    assert first[3] == f"review, 2 items: pushed {PUSHED[:12]}; test passed"
    assert (second[1], second[3]) == ("round 2", f"ci, 1 item: failed: {REJECTED}")
    # The comment on one line, its control characters written out, its markup as typed.
    assert lines[start + 2] == (
        "    - inline by rev-alice on src/cart.py:12: \\x1b]0;owned\\x07\\x1b[2J[bold red]boom[/]"
        " <img src=x onerror=alert(1)>\\nline 2"
    )
    assert lines[start + 3] == "    - review by rev-bob: Handle the empty cart too"
    assert lines[start + 5] == "    - ci by tests: Check: tests\\nFAILED test_total"
    assert lines[start + 6 :] == [
        "  waiting for the next round: 1 item",
        f"    - comment by rev-alice: {PENDING_BODY}",
    ]
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    bare = (await store.tasks.create(new)).task_id
    assert "review rounds" not in hookagent("status", bare, "--url", server).stdout
