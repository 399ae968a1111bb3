"""A review round's workbench: setup before the agent (never the branch's, never with
``setup_env``), the policy's test and its fix turns after, the outcome in ``checks``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from hookagent.settings import Settings
from hookagent.store import Store
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.helpers import REPO, fake_agent
from tests.worker import test_rounds
from tests.worker.test_rounds import deliver, git, opened, round_done
from tests.worker.test_sandbox import needs_bwrap
from tests.worker.test_setup import messages, push_files

# test_rounds' fixtures (found by name): its GitHub stub, app client and worker.
github = test_rounds.github
http = test_rounds.http
start_worker = test_rounds.start_worker

SECRET_VALUE = "round-withheld-" + "Qm47vTz0Lp93XcRd"
# The repository's own setup, as its default branch has it: says whether it got the secret.
DEFAULT_SETUP = (
    'if [ -n "$DEMO_SETUP_SECRET" ]; then echo "default setup: secret given"; '
    'else echo "default setup: secret withheld"; fi\n'
)
# The agent's attack, in every run: its setup script now exfiltrates the secret into a file
# of the change and into the log; then it says whether it has the secret itself.
ATTACK = (
    "printf '%s\\n' 'echo \"branch setup ran: $DEMO_SETUP_SECRET\"' "
    "'echo \"$DEMO_SETUP_SECRET\" > stolen.txt' > .hookagent/setup.sh; "
    'if [ -n "$DEMO_SETUP_SECRET" ]; then echo agent has the secret; '
    "else echo agent has no secret; fi"
)


@pytest.fixture
def own(settings: Settings, github: GitHubStub, tmp_path: Path) -> Settings:
    """test_rounds' settings; each test rewrites its policy with ``use_policy``."""
    policy = tmp_path / "hookagent.toml"
    policy.write_text(f'[repo."{REPO}"]\nmax_rounds = 2\n')
    return settings.model_copy(
        update={
            "github_api_url": github.url,
            "github_token": SecretStr("ghp_test_token_value"),
            "github_webhook_secret": SecretStr(test_rounds.SECRET),
            "github_approvers": "rev-alice",
            "feedback_debounce_s": 0.4,
            "policy_file": policy,
            "agent_command": fake_agent("auto"),
        }
    )


def use_policy(own: Settings, body: str) -> None:
    assert own.policy_file is not None
    own.policy_file.write_text(f'[repo."{REPO}"]\nmax_rounds = 2\n{body}')


async def ask_for_a_round(http: httpx.AsyncClient, github: GitHubStub, number: int) -> None:
    event = github.review_comment_event(number, 4101, body="Rename total")
    answer = await deliver(http, "pull_request_review_comment", event, "wb-1")
    assert answer.status_code == 202, answer.text


def round_lines(lines: list[str]) -> list[str]:
    """The log from the round's start on."""
    start = next(i for i, m in enumerate(lines) if "review round 1: 1 items to address" in m)
    return lines[start:]


async def test_a_round_runs_the_default_branchs_setup_without_setup_env(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, remotes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The execution's agent rewrote ``.hookagent/setup.sh`` on the branch to leak setup_env:
    in the round that script never runs, the default branch's does, and without the secret."""
    monkeypatch.setenv("DEMO_SETUP_SECRET", SECRET_VALUE)
    bare = remotes / f"{REPO}.git"
    push_files(bare, {".hookagent/setup.sh": DEFAULT_SETUP.encode()}, tmp_path)
    use_policy(own, 'setup_env = ["DEMO_SETUP_SECRET"]\n')
    tid, number = await opened(
        http, store, start_worker, own, agent_command=fake_agent("shell", ATTACK)
    )
    branch = f"hookagent/{tid}"
    # The attack is in place: the branch's setup script is the agent's.
    assert "branch setup ran" in git("show", f"{branch}:.hookagent/setup.sh", cwd=bare)
    await ask_for_a_round(http, github, number)
    await round_done(store, tid, 1)
    lines = await messages(store, tid)
    said = round_lines(lines)
    assert not [m for m in lines if SECRET_VALUE in m]
    # (the agent's command line, logged as it starts, quotes the attack's text)
    output = [m for m in lines if not m.startswith("[system] running ")]
    assert not [m for m in output if "branch setup ran" in m], "the branch's script never ran"
    assert "[stdout] shell| agent has no secret" in said
    assert not [m for m in output if "agent has the secret" in m]
    assert "[system] setup: running .hookagent/setup.sh of the default branch" in said, said
    assert [m for m in said if m.startswith("[system] setup: setup_env withheld")] == [
        "[system] setup: setup_env withheld (DEMO_SETUP_SECRET): a review round's branch "
        "holds the agent's earlier commits"
    ]
    assert "[setup] default setup: secret withheld" in said
    # Planning and execution ran it on the clone as the remote had it, with the secret.
    assert lines.count("[setup] default setup: secret given") == 2
    # The round pushed, and nothing of the secret is on the branch.
    subject = git("log", "-1", "--format=%s", branch, cwd=bare)
    assert subject == "hookagent: address review (round 1)"
    assert "stolen.txt" not in git("ls-tree", "-r", "--name-only", branch, cwd=bare).split()
    assert SECRET_VALUE not in git("log", "-p", branch, cwd=bare)
    task = await store.tasks.get(tid)
    assert SECRET_VALUE not in json.dumps([task.result, task.error, github.replies])


async def test_a_round_runs_the_test_with_a_fix_turn_and_reports_its_checks(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub, remotes: Path,
) -> None:  # fmt: skip
    """The test passes once the round's agent addressed the review twice: the execution's
    test fails (a draft), the round's fails once, its fix turn makes it pass."""
    test = "test \"$(grep -c 'addressed review round 1' app.py)\" = 2"
    use_policy(own, f'setup = "echo policy setup ran"\ntest = {json.dumps(test)}\n')
    tid, number = await opened(http, store, start_worker, own)
    assert (await store.tasks.get(tid)).checks == {"test": "failed"}
    await ask_for_a_round(http, github, number)
    await round_done(store, tid, 1)
    lines = await messages(store, tid)
    said = round_lines(lines)
    assert lines.count("[system] setup: running the policy's setup") == 3  # plan, execute, round
    assert "[setup] policy setup ran" in said
    assert "[system] test failed (exit code 1); fix turn 1 of 1" in said
    assert "[system] test passed: exit code 0" in said
    task = await store.tasks.get(tid)
    assert task.checks == {"test": "passed"}
    assert task.commit is not None
    assert task.result == f"review round 1 pushed {task.commit[:12]}; test passed"
    bare = remotes / f"{REPO}.git"
    shown = git("show", f"hookagent/{tid}:app.py", cwd=bare)
    assert shown.count("addressed review round 1") == 2
    [reply] = github.replies
    assert reply["body"].startswith(
        f"Addressed in {task.commit[:12]} (review round 1); the test command passed."
    )


@needs_bwrap
async def test_a_rounds_setup_finds_the_cache_read_only(
    own: Settings, http: httpx.AsyncClient, store: Store, start_worker: RunWorker,
    github: GitHubStub,
) -> None:  # fmt: skip
    """A round's setup installs what the branch (the agent's commits) asks for: what it left
    in the cache, a later task's setup would run with setup_env. Only the setups of
    planning and execution, on the remote's checkout, write it."""
    write = (
        '(echo x > "$HOME/.cache/$(date +%s%N)") 2>/dev/null '
        '&& echo "setup: wrote the cache" || echo "setup: cache read-only"'
    )
    use_policy(own, f"setup = {json.dumps(write)}\n")
    tid, number = await opened(http, store, start_worker, own, sandbox="bwrap",
                               sandbox_network="host")  # fmt: skip
    await ask_for_a_round(http, github, number)
    await round_done(store, tid, 1)
    lines = await messages(store, tid)
    said = round_lines(lines)
    assert "[setup] setup: cache read-only" in said, "\n".join(said)
    assert not [m for m in said if m == "[setup] setup: wrote the cache"]
    assert lines.count("[setup] setup: wrote the cache") == 2  # planning, execution
