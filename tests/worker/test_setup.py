"""The agent's workbench end to end: setup before each run, the cache it fills, the operator's
instructions, setup's secrets, and the agent and model of each phase."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.helpers import FIXTURES, REPO, fake_agent, wait_status

ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
PLANNED = {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}
ALERT = json.loads((FIXTURES / "sentry-event-alert.json").read_text())
WHEEL = "wheels/demo_dep-1.0-py3-none-any.whl"
# The repository's own setup: installs its dependency from the wheel it holds, into the
# cache the first time; every time, links it where the tests look (no network at all).
SETUP_SH = f"""\
set -e
site="$XDG_CACHE_HOME/demo-site"
if [ -d "$site/demo_dep" ]; then
  echo "cache hit: demo_dep already in $site"
else
  echo "cache miss: installing {WHEEL}"
  "{sys.executable}" -m pip install --quiet --no-index --no-deps --disable-pip-version-check \\
    --target "$site" {WHEEL}
fi
ln -sfn "$site" .deps
"""
# The repository's test command: passes only with demo_dep importable.
TESTS = "PYTHONPATH=.deps python3 -c 'import demo_dep; print(\"tests passed\", demo_dep.VALUE)'"
SECRET_VALUE = "setup-only-" + "Kx82jQ0vLm55NbZr"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)
    return done.stdout.decode()


def push_files(bare: Path, files: dict[str, bytes], tmp: Path) -> None:
    """Commit ``files`` on the remote's default branch."""
    work = tmp / f"push-{uuid.uuid4().hex[:8]}"
    git(tmp, "clone", "-q", str(bare), str(work))
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "add files")
    git(work, "push", "-q", "origin", "HEAD")


def wheel_bytes(tmp: Path) -> bytes:
    """A pure-Python wheel of ``demo_dep`` (VALUE = 42), made without any build tool."""
    path = tmp / "demo.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("demo_dep/__init__.py", "VALUE = 42\n")
        info = "demo_dep-1.0.dist-info"
        archive.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: demo-dep\nVersion: 1.0\n"
        )
        archive.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{info}/RECORD", "")
    return path.read_bytes()


def policy_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hookagent.toml"
    path.write_text(f'[repo."{REPO}"]\n{body}')
    return path


async def submit_alert(client: httpx.AsyncClient) -> str:
    payload = json.loads(json.dumps(ALERT))
    payload["data"]["event"]["issue_id"] = uuid.uuid4().hex
    response = await client.post("/webhooks/sentry", json=payload)
    assert response.status_code == 202, response.text
    task_id: str = response.json()["task_id"]
    return task_id


async def messages(store: Store, task_id: str) -> list[str]:
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    return [e.message for e in entries]


def setup_seconds(lines: list[str]) -> float:
    found = [re.search(r"setup finished: exit code 0 after ([0-9.]+)s", m) for m in lines]
    times = [float(m.group(1)) for m in found if m]
    assert len(times) == 1, lines
    return times[0]


def add_setup(remotes: Path, tmp_path: Path) -> Path:
    """The remote with a wheel and a ``.hookagent/setup.sh`` installing it."""
    bare = remotes / f"{REPO}.git"
    files = {WHEEL: wheel_bytes(tmp_path), ".hookagent/setup.sh": SETUP_SH.encode()}
    push_files(bare, files, tmp_path)
    return bare


@pytest.fixture
def setup_repo(remotes: Path, tmp_path: Path) -> Path:
    """The remote with a wheel and a ``.hookagent/setup.sh`` installing it."""
    return add_setup(remotes, tmp_path)


async def test_setup_installs_what_the_tests_need_and_the_second_task_hits_the_cache(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, setup_repo: Path,
    settings: Settings, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    start_worker(agent_command=fake_agent("shell", TESTS))
    times = []
    for expected in ("cache miss", "cache hit"):
        tid = await submit_alert(client)
        assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
        lines = await messages(store, tid)
        assert "[system] setup: running .hookagent/setup.sh" in lines
        assert any(m.startswith(f"[setup] {expected}") for m in lines), lines
        assert "[stdout] shell| tests passed 42" in lines
        # Setup ran before the agent, each in its turn.
        ran = lines.index("[system] setup: running .hookagent/setup.sh")
        assert ran < next(i for i, m in enumerate(lines) if m.startswith("[system] running "))
        times.append(setup_seconds(lines))
    with capsys.disabled():
        print(  # noqa: T201 - the figures the issue asks for, shown with or without -s
            f"\nsetup: first task {times[0]:.2f}s (cache miss), second {times[1]:.2f}s (hit)"
        )
    assert times[1] < times[0]
    cache = settings.data_dir / "cache" / REPO.replace("/", "+")
    assert (cache / "demo-site" / "demo_dep" / "__init__.py").is_file()


async def test_the_tests_fail_without_setup(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, setup_repo: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """``setup = ""`` turns the repository's script off: the same test command fails."""
    start_worker(
        agent_command=fake_agent("shell", TESTS), policy_file=policy_file(tmp_path, 'setup = ""\n')
    )
    tid = await submit_alert(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    lines = await messages(store, tid)
    assert not [m for m in lines if m.startswith(("[setup]", "[system] setup"))], "none ran"
    assert "[stdout] shell| tests passed 42" not in lines
    assert "[stdout] shell exit 1" in lines


async def test_what_setup_installs_in_the_workspace_is_never_committed(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    remotes: Path,
) -> None:  # fmt: skip
    script = "mkdir -p 'vendor dir/lib' && echo x > 'vendor dir/lib/a.js' && ln -s ../x .deps"
    body = f'auto_approve = [{{ source = "sentry" }}]\nsetup = {json.dumps(script)}\n'
    start_worker(agent_command=fake_agent("auto"), policy_file=policy_file(tmp_path, body))
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    said = "[system] setup's new files are left out of the commit: .deps, vendor dir"
    assert said in lines, lines
    pushed = git(remotes / f"{REPO}.git", "ls-tree", "-r", "--name-only", f"hookagent/{tid}")
    assert pushed.split() == ["README.md", "app.py"]
    changed = git(remotes / f"{REPO}.git", "diff", "--stat", "main", f"hookagent/{tid}")
    assert "app.py" in changed


async def test_a_failing_setup_fails_the_task_with_its_output(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    script = 'echo "resolving deps"; echo "no matching version of leftpad" >&2; exit 3'
    body = f"setup = {json.dumps(script)}\n"
    start_worker(agent_command=fake_agent("shell", TESTS), policy_file=policy_file(tmp_path, body))
    tid = await submit_alert(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error is not None
    assert task.error.startswith("setup failed (exit 3); its last lines:"), task.error
    assert "no matching version of leftpad" in task.error
    lines = await messages(store, tid)
    assert "[setup] resolving deps" in lines
    assert "[setup] no matching version of leftpad" in lines
    assert not [m for m in lines if m.startswith("[stdout] ")], "the agent never ran"


async def test_a_setup_timeout_fails_the_task(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    body = 'setup = "echo waiting; exec sleep 30"\nsetup_timeout = 1\n'
    start_worker(agent_command=fake_agent("echo"), policy_file=policy_file(tmp_path, body))
    tid = await submit_alert(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.FAILED
    task = await store.tasks.get(tid)
    assert task.error == "setup timed out after 1s (setup_timeout); its last lines:\nwaiting"


async def test_setup_env_reaches_setup_and_never_the_agent_or_the_log(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # A name no secret-name rule knows: only setup_env makes it a secret.
    monkeypatch.setenv("DEMO_REGISTRY_VALUE", SECRET_VALUE)
    script = 'test -n "$DEMO_REGISTRY_VALUE"; echo "setup got $DEMO_REGISTRY_VALUE"'
    body = f'setup = {json.dumps(script)}\nsetup_env = ["DEMO_REGISTRY_VALUE"]\n'
    start_worker(agent_command=fake_agent("env"), policy_file=policy_file(tmp_path, body))
    tid = await submit_alert(client)
    assert await wait_status(store, tid, PLANNED) is TaskStatus.PENDING_APPROVAL
    lines = await messages(store, tid)
    said = [m for m in lines if m.startswith("[setup] setup got ")]
    assert said and SECRET_VALUE not in said[0], "setup had it, the log shows it redacted"
    assert not [m for m in lines if SECRET_VALUE in m]
    agent_env = [m for m in lines if m.startswith("[stdout] env ")]
    assert agent_env, "the agent printed its environment"
    assert not [m for m in agent_env if "DEMO_REGISTRY_VALUE" in m]
    task = await store.tasks.get(tid)
    assert SECRET_VALUE not in (task.plan or "")


async def test_policy_instructions_reach_both_prompts(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    extra = tmp_path / "operator.md"
    extra.write_text("Operator rule two: keep the changelog.\n")
    body = (
        'auto_approve = [{ source = "sentry" }]\n'
        'instructions = "Operator rule one: run make check."\n'
        'instructions_file = "operator.md"\n'  # relative to the policy file
    )
    start_worker(agent_command=fake_agent("shell", "true"), policy_file=policy_file(tmp_path, body))
    tid = await submit_alert(client)
    assert await wait_status(store, tid, ENDED) is TaskStatus.COMPLETED
    lines = await messages(store, tid)
    for said in (
        "[stdout] prompt| ## Instructions from the operator",
        "[stdout] prompt| Operator rule one: run make check.",
        "[stdout] prompt| Operator rule two: keep the changelog.",
    ):
        assert lines.count(said) == 2, (said, lines)  # planning and execution


async def test_plan_model_and_execute_model_reach_their_phase(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path
) -> None:
    recording = Path(__file__).parents[1] / "agents" / "recordings" / "claude-todos.jsonl"
    claude = tmp_path / "claude"
    claude.write_text(f"#!/bin/sh\ncat > /dev/null\ncat '{recording}'\n")
    claude.chmod(0o755)
    body = (
        'auto_approve = [{ source = "sentry" }]\nmodel = "base-model"\n'
        'plan_agent = "claude"\nplan_model = "planner-model"\n'
        'execute_agent = "claude"\nexecute_model = "executor-model"\n'
    )
    start_worker(claude_bin=str(claude), policy_file=policy_file(tmp_path, body))
    tid = await submit_alert(client)
    await wait_status(store, tid, ENDED)
    runs = [m for m in await messages(store, tid) if m.startswith("[system] running ")]
    assert len(runs) == 2, runs
    plan, execute = (shlex.split(m.removeprefix("[system] running ")) for m in runs)
    assert plan[plan.index("--model") + 1] == "planner-model"
    assert execute[execute.index("--model") + 1] == "executor-model"
