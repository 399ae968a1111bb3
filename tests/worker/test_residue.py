"""A setup_env value setup leaves where the agent reads (workspace, cache) stops the task."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.store import Store
from hookagent.worker.residue import FILE_MAX, search
from tests.conftest import RunWorker
from tests.helpers import fake_agent, wait_status
from tests.worker.test_sandbox import needs_bwrap
from tests.worker.test_setup import PLANNED, messages, policy_file, submit_alert

VALUE = "npm_" + "Zq81LxT0vW4kPe7s"


def start(mark: Path) -> float:
    """A start time after every file made so far, in the clock files are stamped with.

    The kernel stamps ctime from a coarse clock (a tick behind ``time.time()``): a file
    made just after ``time.time()`` can carry an earlier ctime. So the start is a marker
    file's own ctime, taken once the clock has moved a tick past the files made before.
    """
    time.sleep(0.02)  # a tick (at most 10 ms) past the files made before: not a wait on them
    mark.write_text("")
    return mark.stat().st_ctime


def test_a_value_in_a_file_changed_since_is_found_nearest_first(tmp_path: Path) -> None:
    workspace, cache = tmp_path / "w", tmp_path / "c"
    (workspace / "deep" / "er").mkdir(parents=True)
    (cache / "npm").mkdir(parents=True)
    (workspace / "old.txt").write_text(f"token {VALUE}\n")
    os.utime(workspace / "old.txt", (0, 0))  # mtime set back: ctime is now all the same
    since = start(tmp_path / "mark")
    (workspace / "deep" / "er" / "config").write_text(f"auth={VALUE}\n")
    (cache / "npm" / ".npmrc").write_text(f"//r/:_authToken={VALUE}\n")
    roots = [(workspace, ""), (cache, "~/.cache/")]
    found = search(roots, since, {"NPM_TOKEN": VALUE})
    # Breadth first over both roots: the cache's file is two levels deep, the other three.
    assert (found.name, found.path) == ("NPM_TOKEN", "~/.cache/npm/.npmrc")
    (cache / "npm" / ".npmrc").write_text("//r/:_authToken=${NPM_TOKEN}\n")
    found = search(roots, since, {"NPM_TOKEN": VALUE})
    assert found.path == "deep/er/config"


def test_files_from_before_setup_links_and_short_values_are_not_read(tmp_path: Path) -> None:
    (tmp_path / "before").write_text(VALUE)
    since = start(tmp_path.parent / f"{tmp_path.name}-mark")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret").write_text(VALUE)
    (tmp_path / "link").symlink_to(outside / "secret")
    (tmp_path / "dir-link").symlink_to(outside)
    (tmp_path / "short").write_text("abc")
    found = search([(tmp_path, "")], since, {"NPM_TOKEN": VALUE, "PIN": "abc"})
    assert (found.name, found.unread) == (None, 0)


def test_a_file_past_the_limit_is_counted_unread(tmp_path: Path) -> None:
    since = time.time() - 1
    with (tmp_path / "big").open("wb") as big:
        big.truncate(FILE_MAX + 1)
    found = search([(tmp_path, "")], since, {"NPM_TOKEN": VALUE})
    assert (found.name, found.unread) == (None, 1)


@needs_bwrap  # setup's home is the sandbox's: without one, ~ would be this machine's
@pytest.mark.parametrize(
    ("where", "fails"),
    [(".npmrc", True), ("$XDG_CACHE_HOME/npm/.npmrc", True), ("$HOME/.npmrc", False)],
)
async def test_setup_leaving_the_value_where_the_agent_reads_fails_the_task(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, where: str, fails: bool,
) -> None:  # fmt: skip
    """The usual npm setup writes its token into the workspace's ``.npmrc``: the agent
    would read it. Under ``~`` (setup's home, gone when it ends) it may."""
    monkeypatch.setenv("DEMO_NPM_TOKEN", VALUE)
    setup = (
        f'mkdir -p "$(dirname "{where}")" && '
        f'printf \'//registry.example/:_authToken=%s\\n\' "$DEMO_NPM_TOKEN" > "{where}"'
    )
    body = f'setup = {json.dumps(setup)}\nsetup_env = ["DEMO_NPM_TOKEN"]\n'
    start_worker(
        agent_command=fake_agent("echo"),
        policy_file=policy_file(tmp_path, body),
        sandbox="bwrap",
        sandbox_network="host",
    )
    tid = await submit_alert(client)
    status = await wait_status(store, tid, PLANNED, timeout=60)
    lines = await messages(store, tid)
    assert not [m for m in lines if VALUE in m]
    if not fails:
        assert status is TaskStatus.PENDING_APPROVAL, lines
        return
    assert status is TaskStatus.FAILED, lines
    task = await store.tasks.get(tid)
    shown = ".npmrc" if where == ".npmrc" else "~/.cache/npm/.npmrc"
    assert task.error == (
        f"setup left the value of DEMO_NPM_TOKEN in {shown}, where the agent would read it; "
        "write credentials under ~ (setup's home is gone when it ends), not into the "
        "workspace or ~/.cache"
    )
    assert not [m for m in lines if m.startswith("[stdout]")], "the agent never ran"
