"""The checks an agent's change passes before commit or push, on a real clone and a real log.

The agent writes what it likes into its workspace: a nested repository, a CI definition, a
token, a value only the run's redactor knows. Each test plays one of those against
``vet_change`` (what an execution and a review round both run) or the execution's own
re-check of ``auto_approve``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hookagent.errors import PolicyViolation
from hookagent.models import NewTask, Task
from hookagent.policy import AutoRule, Policy
from hookagent.redact import Redactor
from hookagent.store import Store
from hookagent.store.writer import LogWriter
from hookagent.worker.checkout import Checkout
from hookagent.worker.vetting import (
    DIFF_STAT_LINES,
    describe_change,
    recheck_auto_approval,
    vet_change,
)
from hookagent.worker.workspace import Workspaces
from tests.helpers import REPO
from tests.worker.test_setup import git, messages

TOKEN = "ghp_" + "Vt9" * 12
# A setup_env value: hookagent's own redactor does not know it, the run's does.
SETUP_VALUE = "npmtok-4c1e8a2f9b7d3605ee19"


async def clone(tmp_path: Path, remotes: Path) -> tuple[Path, Checkout]:
    spaces = Workspaces(tmp_path / "ws", url_template=f"file://{remotes}/{{repo}}.git", timeout=30)
    path = await spaces.clone("task-1764040000123-0a1b2c3d4e5f", REPO)
    return path, spaces.checkout(path)


async def new_task(store: Store) -> Task:
    return await store.tasks.create(
        NewTask(source="sentry", repository=REPO, title="t", prompt="p")
    )


def writer_for(store: Store, task: Task) -> LogWriter:
    # Not entered: vet_change flushes what it adds itself, as the phases rely on.
    return LogWriter(
        store.logs, task.task_id, token="", attempt=1,
        batch_lines=1000, flush_ms=60_000, line_max=1000, raw_max=0,
    )  # fmt: skip


async def vet(checkout: Checkout, policy: Policy, writer: LogWriter) -> list[str]:
    run_redactor = Redactor([]).including([SETUP_VALUE])
    return await vet_change(
        checkout, "main", policy=policy, redactor=run_redactor, repository=REPO, writer=writer
    )


async def test_a_nested_repository_is_left_out_and_said_so(
    store: Store, tmp_path: Path, remotes: Path
) -> None:
    path, checkout = await clone(tmp_path, remotes)
    (path / "src").mkdir()
    (path / "src" / "fix.py").write_text("x = 1\n")
    nested = path / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "--quiet")
    (nested / "planted.txt").write_text(f"{TOKEN}\n")  # inside it: never staged, never scanned
    task = await new_task(store)
    changed = await vet(checkout, Policy(), writer_for(store, task))
    assert changed == ["src/fix.py"]
    lines = await messages(store, task.task_id)
    assert "[system] left out nested git repositories: vendor/lib" in lines, lines


async def test_a_ci_definition_is_refused_before_any_scan(
    store: Store, tmp_path: Path, remotes: Path
) -> None:
    path, checkout = await clone(tmp_path, remotes)
    workflow = path / ".github" / "workflows" / "leak.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(f"run: echo {TOKEN}\n")
    task = await new_task(store)
    with pytest.raises(PolicyViolation) as refused:
        await vet(checkout, Policy(), writer_for(store, task))
    assert refused.value.message == (
        "changes outside the policy: .github/workflows/leak.yml "
        f"(paths_denied of {REPO}; CI definitions need allow_ci_changes = true)"
    )
    assert not [m for m in await messages(store, task.task_id) if "refused to push" in m]


async def test_every_secret_is_logged_without_its_value_and_fails_the_change(
    store: Store, tmp_path: Path, remotes: Path
) -> None:
    path, checkout = await clone(tmp_path, remotes)
    (path / "config.py").write_text(f"TOKEN = '{TOKEN}'\n")
    (path / "npmrc.txt").write_text(f"//registry/:_authToken={SETUP_VALUE}\n")
    (path / "tests" / "fixtures").mkdir(parents=True)
    (path / "tests" / "fixtures" / "sample.txt").write_text(f"{TOKEN}\n")
    task = await new_task(store)
    policy = Policy(allow_secrets_in=("tests/fixtures/**",))
    with pytest.raises(PolicyViolation) as refused:
        await vet(checkout, policy, writer_for(store, task))
    assert refused.value.message == "refused to push: config.py:1 holds a github_token"
    lines = await messages(store, task.task_id)
    found = [m for m in lines if "refused to push" in m]
    assert found == [
        "[system] refused to push: config.py:1 holds a github_token",
        "[system] refused to push: npmrc.txt:1 holds a secret",
    ], lines
    assert not [m for m in lines if TOKEN in m or SETUP_VALUE in m]


async def test_an_auto_approved_change_past_max_files_waits_for_a_person(
    store: Store, tmp_path: Path, remotes: Path
) -> None:
    path, checkout = await clone(tmp_path, remotes)
    for name in ("a.py", "b.py"):
        (path / name).write_text("x = 1\n")
    task = await new_task(store)
    policy = Policy(auto_approve=(AutoRule(source="sentry", max_files=1),))
    changed = await vet(checkout, policy, writer_for(store, task))
    by_rule = task.model_copy(update={"approver": "policy"})
    stat = await recheck_auto_approval(
        checkout, "main", task=by_rule, policy=policy, files=len(changed)
    )
    assert stat is not None and "2 files changed" in stat, stat
    wider = Policy(auto_approve=(AutoRule(source="sentry", max_files=2),))
    assert (
        await recheck_auto_approval(checkout, "main", task=by_rule, policy=wider, files=2) is None
    )
    # A person approved it: no size applies.
    by_person = task.model_copy(update={"approver": "alice"})
    held = await recheck_auto_approval(checkout, "main", task=by_person, policy=policy, files=2)
    assert held is None


async def test_the_recorded_diff_stat_is_redacted_and_capped(tmp_path: Path, remotes: Path) -> None:
    path, checkout = await clone(tmp_path, remotes)
    (path / f"{SETUP_VALUE}.txt").write_text("x\n")
    for number in range(DIFF_STAT_LINES + 5):
        (path / f"f{number:02}.txt").write_text("x\n")
    await checkout.stage()
    stat = await describe_change(checkout, "main", Redactor([SETUP_VALUE]))
    lines = stat.split("\n")
    assert len(lines) == DIFF_STAT_LINES, lines
    assert lines[-1].strip().startswith(f"{DIFF_STAT_LINES + 6} files changed"), lines[-1]
    assert SETUP_VALUE not in stat
    everything = await checkout.diff("main", stat=True)
    assert SETUP_VALUE in everything  # the name is in the raw stat: the redactor took it out
