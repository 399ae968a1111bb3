"""Under real bubblewrap, setup writes its own cache and nothing else of hookagent's: not
the repository's mirror, not another repository's cache; a planning agent writes no cache."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.sandbox import probe
from tests.conftest import RunWorker
from tests.helpers import REPO, fake_agent, wait_status
from tests.worker.test_setup import PLANNED, messages, policy_file, submit_alert

UNUSABLE = probe(network=True)
pytestmark = pytest.mark.skipif(
    UNUSABLE is not None, reason=f"bubblewrap cannot sandbox on this machine: {UNUSABLE}"
)


def attempts(who: str, mirror: Path, other: Path, data: Path) -> str:
    """Shell lines writing where ``who`` must not, and into its own cache, saying how each went."""
    return "; ".join(
        [
            f"(echo planted > {mirror}/HEAD) 2>/dev/null && echo '{who}: wrote the mirror'",
            f"(echo planted > {mirror}/planted) 2>/dev/null && echo '{who}: planted in the mirror'",
            f"(echo x > {other}/planted) 2>/dev/null && echo '{who}: planted in another cache'",
            # The workspace's parents exist (empty) for its bind; nothing else of the data dir.
            f"ls {data}/mirrors >/dev/null 2>&1 && echo '{who}: saw the data dir mirrors'",
            f"ls {data}/cache >/dev/null 2>&1 && echo '{who}: saw the data dir caches'",
            f'echo {who} > "$XDG_CACHE_HOME/{who}" && echo "{who}: wrote its own cache"',
            f'test "$XDG_CACHE_HOME" = "$HOME/.cache" && echo "{who}: cache at home"',
            f"(echo {who} > $HOME/.cache/{who}-direct) 2>/dev/null"
            f" && echo '{who}: wrote the cache'",
            "true",
        ]
    )


async def test_setup_writes_its_cache_a_planning_agent_none_and_nothing_else(
    client: httpx.AsyncClient, store: Store, start_worker: RunWorker, settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    data = settings.data_dir.resolve()
    mirror = data / "mirrors" / "acme+payments-api.git"
    other = data / "cache" / "acme+other"
    other.mkdir(parents=True)
    (other / "kept").write_text("another repository's\n")
    setup = attempts("setup", mirror, other, data)
    body = f"setup = {json.dumps(setup)}\n"
    agent = fake_agent("shell", attempts("agent", mirror, other, data))
    start_worker(agent_command=agent, sandbox="bwrap", policy_file=policy_file(tmp_path, body))
    tid = await submit_alert(client)
    assert await wait_status(store, tid, PLANNED, timeout=60) is TaskStatus.PENDING_APPROVAL
    lines = await messages(store, tid)
    assert "[system] setup: running the policy's setup in a bwrap sandbox" in lines
    for who, prefix in (("setup", "[setup] "), ("agent", "[stdout] shell| ")):
        said = [m.removeprefix(prefix) for m in lines if m.startswith(prefix)]
        assert f"{who}: wrote its own cache" in said, lines
        assert not [m for m in said if "mirror" in m or "another" in m or "data dir" in m]
        # Planning persists nothing: an injected plan run cannot leave files in the cache
        # for a later task's setup (which holds setup_env) or agent to run.
        persisted = [f"{who}: cache at home", f"{who}: wrote the cache"]
        if who == "setup":
            assert all(line in said for line in persisted), said
        else:
            assert not [line for line in persisted if line in said], said
    assert (mirror / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert not (mirror / "planted").exists()
    assert sorted(p.name for p in other.iterdir()) == ["kept"]
    own = data / "cache" / "acme+payments-api"
    assert sorted(p.name for p in own.iterdir()) == ["setup", "setup-direct"]
    assert REPO == "acme/payments-api"
