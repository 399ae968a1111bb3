"""Policy ``test``: run in the sandbox after execution, fix turns, a draft when it still fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.helpers import fake_agent, wait_status
from tests.worker.test_policies import ENDED, messages, policy_file, submit_alert
from tests.worker.test_sandbox import needs_bwrap

# Passes once the agent's fix turn wrote ``fixed = True``; -B: no __pycache__ in the change.
TEST = (
    "python3 -B -c \"import app; ok = hasattr(app, 'fixed'); "
    "print('fixed' if ok else 'NOT FIXED'); raise SystemExit(0 if ok else 3)\""
)
AUTO = 'auto_approve = [{ source = "sentry" }]\n'


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


def start(
    start_worker: RunWorker, tmp_path: Path, github: GitHubStub, *args: str, rules: str
) -> None:
    """A worker running the ``fixer`` fake agent under ``rules``, opening PRs on the stub."""
    start_worker(
        agent_command=fake_agent("fixer", *args),
        policy_file=policy_file(tmp_path, AUTO + rules),
        github_api_url=github.url,
        github_token=SecretStr("ghp_checks_token"),
    )


async def checks_of(client: httpx.AsyncClient, task_id: str) -> dict[str, str]:
    """``checks`` as ``GET /tasks/{id}`` shows it."""
    response = await client.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.text
    checks: dict[str, str] = response.json()["checks"]
    return checks


async def test_a_failing_test_gets_one_fix_turn_then_a_draft_pull_request(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub,
) -> None:  # fmt: skip
    start(start_worker, tmp_path, github, "never", rules=f"test = {json.dumps(TEST)}\n")
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    assert lines.count("[test] NOT FIXED") == 2, lines  # the first run and the one after the fix
    assert "[system] test failed (exit code 3); fix turn 1 of 1" in lines
    # The fix turn got the failing output, fenced as data.
    assert any(m.endswith(" | NOT FIXED") for m in lines if "fix turn; saw" in m), lines
    assert "[system] test failed: exit code 3" in lines
    assert await checks_of(client, tid) == {"test": "failed"}
    [pull] = github.requests
    assert pull["body"]["draft"] is True
    body = pull["body"]["body"]
    assert 'checks: {"test": "failed"}' in body and "NOT FIXED" in body and "draft" in body


async def test_a_fix_turn_that_makes_the_test_pass_opens_a_normal_pull_request(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub,
) -> None:  # fmt: skip
    start(start_worker, tmp_path, github, "fix", rules=f"test = {json.dumps(TEST)}\n")
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    assert lines.index("[test] NOT FIXED") < lines.index("[test] fixed"), lines
    assert await checks_of(client, tid) == {"test": "passed"}
    [pull] = github.requests
    assert "draft" not in pull["body"]
    assert 'checks: {"test": "passed"}' in pull["body"]["body"]


async def test_a_passing_test_needs_no_fix_turn(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub,
) -> None:  # fmt: skip
    start(start_worker, tmp_path, github, "never", rules="test = \"python3 -B -c 'import app'\"\n")
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    assert "[system] test passed: exit code 0" in lines
    assert not [m for m in lines if "fix turn" in m]
    assert await checks_of(client, tid) == {"test": "passed"}
    assert "draft" not in github.requests[0]["body"]


async def test_without_a_test_the_checks_say_not_configured(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub,
) -> None:  # fmt: skip
    start(start_worker, tmp_path, github, "never", rules="")
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    assert await checks_of(client, tid) == {"test": "not configured"}
    assert 'checks: {"test": "not configured"}' in github.requests[0]["body"]["body"]
    assert not [m for m in await messages(store, tid) if m.startswith("[test]")]


async def test_max_test_fixes_zero_means_a_draft_at_once(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub,
) -> None:  # fmt: skip
    rules = f"test = {json.dumps(TEST)}\nmax_test_fixes = 0\n"
    start(start_worker, tmp_path, github, "fix", rules=rules)
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    assert lines.count("[test] NOT FIXED") == 1 and not [m for m in lines if "fix turn" in m]
    assert github.requests[0]["body"]["draft"] is True


async def test_a_secret_in_the_test_output_is_redacted(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub,
) -> None:  # fmt: skip
    # The GitHub token is one of hookagent's secrets; the test prints it and fails.
    rules = 'test = "echo token ghp_checks_token; exit 1"\nmax_test_fixes = 0\n'
    start(start_worker, tmp_path, github, "never", rules=rules)
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    assert "[test] token [REDACTED:secret]" in lines, lines
    assert "ghp_checks_token" not in json.dumps(lines)
    assert "ghp_checks_token" not in json.dumps([r["body"] for r in github.requests])


@needs_bwrap
async def test_an_agent_rewriting_the_tests_cannot_reach_outside_the_sandbox(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub,
) -> None:  # fmt: skip
    """The test command runs the file the agent wrote; under bwrap it sees none of the host."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "host-secret.txt").write_text("not for the tests\n")
    start_worker(
        agent_command=fake_agent("fixer", "subvert", str(host)),
        policy_file=policy_file(tmp_path, AUTO + 'test = "python3 -B run_tests.py"\n'),
        github_api_url=github.url,
        github_token=SecretStr("ghp_checks_token"),
        sandbox="bwrap",
        sandbox_network="host",
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED, timeout=60) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    # It ran (hookagent ran the agent's file), in the sandbox: the host's directory is not
    # there, its write went to the sandbox's own /tmp, gone with it.
    assert "[test] read blocked FileNotFoundError" in lines, "\n".join(lines)
    assert not (host / "escaped").exists()
    assert "[system] running the test command: python3 -B run_tests.py" in lines


async def test_a_fix_turn_runs_no_setup_on_the_agents_workspace(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub,
) -> None:  # fmt: skip
    """Setup holds the setup_env secrets: it runs on the clone as the remote has it (before
    planning, before execution), never again on a workspace the agent has written, where a
    rewritten setup script or package hook would run with them."""
    runs = tmp_path / "setup-runs"
    setup = f"echo ran >> {runs}"
    rules = f"test = {json.dumps(TEST)}\nsetup = {json.dumps(setup)}\n"
    start(start_worker, tmp_path, github, "never", rules=rules)
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    assert "[system] test failed (exit code 3); fix turn 1 of 1" in lines
    assert runs.read_text().splitlines() == ["ran", "ran"], lines  # plan, execute: no third


@needs_bwrap
async def test_the_test_command_gets_the_cache_setup_filled(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub,
) -> None:  # fmt: skip
    """Setup installs a tool into the repository's cache only (not the workspace); the test
    command needs it. Under bwrap the home is fresh: it passes only with the cache bound.
    The tests are the agent's code: they read the cache and write none of it."""
    tool = '"$XDG_CACHE_HOME/bin/demo-tool"'
    setup = (
        'mkdir -p "$XDG_CACHE_HOME/bin" && '
        f"printf '#!/bin/sh\\necho tool from the cache\\n' > {tool} && chmod +x {tool}"
    )
    test = (
        '"$HOME/.cache/bin/demo-tool" && '
        '(echo x > "$HOME/.cache/bin/planted" 2>/dev/null || echo "cache read-only") && '
        'echo "cache dirs: $XDG_CACHE_HOME $PIP_CACHE_DIR $npm_config_cache" && '
        'mkdir -p "$npm_config_cache" && echo "scratch writable"'
    )
    rules = f"test = {json.dumps(test)}\nsetup = {json.dumps(setup)}\nmax_test_fixes = 0\n"
    start_worker(
        agent_command=fake_agent("fixer", "never"),
        policy_file=policy_file(tmp_path, AUTO + rules),
        github_api_url=github.url,
        github_token=SecretStr("ghp_checks_token"),
        sandbox="bwrap",
        sandbox_network="host",
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED, timeout=60) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    assert "[test] tool from the cache" in lines, "\n".join(lines)
    assert "[test] cache read-only" in lines
    # Its package managers write a scratch cache, gone with the run.
    home = "/home/agent/.cache-run"
    assert f"[test] cache dirs: {home} {home}/pip {home}/npm" in lines
    assert "[test] scratch writable" in lines
    assert await checks_of(client, tid) == {"test": "passed"}
    assert "draft" not in github.requests[0]["body"]


@needs_bwrap
async def test_only_setup_on_the_remotes_checkout_writes_the_cache(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    github: GitHubStub, settings: Settings,
) -> None:  # fmt: skip
    """What an agent run or its tests leave in the cache, a later task's setup (holding
    setup_env) would run: planning, execution and the test command all find it read-only."""
    plant = (
        '(echo planted > "$HOME/.cache/from-{0}") 2>/dev/null && echo "{0}: planted"; '
        '(mkdir -p "$XDG_CACHE_HOME" && echo x > "$XDG_CACHE_HOME/own") && echo "{0}: scratch"'
    )
    rules = (
        f"setup = {json.dumps('echo setup > $XDG_CACHE_HOME/from-setup')}\n"
        f"test = {json.dumps(plant.format('test'))}\nmax_test_fixes = 0\n"
    )
    start_worker(
        agent_command=fake_agent("shell", plant.format("agent")),
        policy_file=policy_file(tmp_path, AUTO + rules),
        github_api_url=github.url,
        github_token=SecretStr("ghp_checks_token"),
        sandbox="bwrap",
        sandbox_network="host",
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED, timeout=60) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    # The agent ran twice (plan, execute), the test once: each had a writable scratch cache.
    assert lines.count("[stdout] shell| agent: scratch") == 2, "\n".join(lines)
    assert "[test] test: scratch" in lines
    assert not [m for m in lines if m.endswith(": planted")], "\n".join(lines)
    cache = settings.data_dir / "cache" / "acme+payments-api"
    assert sorted(p.name for p in cache.iterdir()) == ["from-setup"]
