"""The subprocess runner against real processes (the fake agent)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hookagent.agents import ClaudeAgent, CodexAgent, GeminiAgent, capture
from hookagent.agents.base import AgentRun
from hookagent.agents.runner import run_process
from hookagent.errors import AgentError
from hookagent.models import LogStream
from tests.helpers import FAKE_AGENT, wait_dead


class Collector:
    """Collects lines per stream, as the worker's sink would."""

    def __init__(self) -> None:
        self.lines: dict[LogStream, list[str]] = {LogStream.STDOUT: [], LogStream.STDERR: []}

    async def __call__(self, stream: LogStream, lines: list[str]) -> None:
        self.lines[stream].extend(lines)


def argv(*args: str) -> list[str]:
    return [sys.executable, str(FAKE_AGENT), *args]


async def run(
    tmp_path: Path, *args: str, timeout: float = 30
) -> tuple[Collector, int | None, bool]:
    sink = Collector()
    result = await run_process(
        argv(*args),
        stdin=b"the prompt\n",
        cwd=tmp_path,
        on_lines=sink,
        timeout=timeout,
        kill_grace=1,
    )
    return sink, result.exit_code, result.timed_out


async def test_prompt_goes_on_stdin_and_streams_are_separate(tmp_path: Path) -> None:
    sink, code, _ = await run(tmp_path, "mixed", "3")
    assert code == 0
    assert sink.lines[LogStream.STDOUT] == ["out 0", "out 1", "out 2", "PLAN: mixed"]
    assert sink.lines[LogStream.STDERR] == ["err 0", "err 1", "err 2"]
    echo, _, _ = await run(tmp_path, "echo")
    assert "stdin first line: the prompt" in echo.lines[LogStream.STDOUT]


async def test_a_two_megabyte_line_is_one_line(tmp_path: Path) -> None:
    sink, code, _ = await run(tmp_path, "huge", str(2 * 1024 * 1024))
    assert code == 0
    assert [len(x) for x in sink.lines[LogStream.STDOUT]] == [2 * 1024 * 1024, len("after huge")]


async def test_binary_output_is_replaced(tmp_path: Path) -> None:
    sink, code, _ = await run(tmp_path, "binary")
    assert code == 0
    assert sink.lines[LogStream.STDOUT][0].startswith("ok \ufffd\ufffd\x00 bytes")


async def test_exit_code_is_reported(tmp_path: Path) -> None:
    sink, code, _ = await run(tmp_path, "crash", "7")
    assert code == 7
    assert sink.lines[LogStream.STDERR] == ["Traceback: boom"]


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    sink, _, timed_out = await run(tmp_path, "hang", "spawn", str(pidfile), timeout=3)
    assert timed_out
    assert sink.lines[LogStream.STDOUT] == ["hanging now"]
    pids = [int(pid) for pid in pidfile.read_text().split()]
    assert len(pids) == 2, pids  # the agent and the child it spawned
    # The group got SIGKILL before run_process returned; a grandchild is not ours to reap,
    # so its end is awaited (on its pidfd) rather than expected at this very instant.
    for pid in pids:
        await wait_dead(pid, timeout=5)


async def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="agent binary not found: 'no-such-agent-cli'"):
        await run_process(
            ["no-such-agent-cli"],
            stdin=b"",
            cwd=tmp_path,
            on_lines=Collector(),
            timeout=5,
            kill_grace=1,
        )


RUNS: dict[str, Callable[[], AgentRun]] = {
    "claude": lambda: ClaudeAgent("claude").start(),
    "codex": lambda: CodexAgent("codex").start(),
    "gemini": lambda: GeminiAgent("gemini").start(),
}


def long_output(agent: str, plan: str) -> list[dict[str, object]]:
    """Each JSON adapter's events for a run whose plan is ``plan``, in one event line."""
    if agent == "claude":
        return [{"type": "result", "subtype": "success", "is_error": False, "result": plan}]
    if agent == "codex":
        message = {"id": "item_1", "type": "agent_message", "text": plan}
        return [
            {"type": "item.completed", "item": message},
            {"type": "turn.completed", "usage": {"input_tokens": 1, "output_tokens": 1}},
        ]
    return [
        {"type": "message", "role": "assistant", "content": plan, "delta": True},
        {"type": "result", "status": "success", "stats": {"total_tokens": 1}},
    ]


@pytest.mark.parametrize("agent", ["claude", "codex", "gemini"])
@pytest.mark.parametrize("size", [300 * 1024, 5 * 1024 * 1024], ids=["300KB", "5MB"])
async def test_a_long_event_line_written_at_exit_parses_whole(
    tmp_path: Path, agent: str, size: int
) -> None:
    # The agent writes its last line without waiting and exits: all of it must arrive.
    plan = "PLAN:" + " guard the empty list." * (size // 22)
    output = tmp_path / "output.jsonl"
    output.write_text("".join(json.dumps(e) + "\n" for e in long_output(agent, plan)))
    run = RUNS[agent]()

    async def sink(stream: LogStream, lines: list[str]) -> None:
        run.parse_lines(stream, lines)

    result = await run_process(
        argv("write-and-exit", str(output)),
        stdin=b"the prompt\n",
        cwd=tmp_path,
        on_lines=sink,
        timeout=30,
        kill_grace=1,
    )
    outcome = run.finish(result.exit_code)
    assert outcome.ok, outcome.error
    assert outcome.plan == plan


async def test_a_helper_left_running_neither_holds_up_the_run_nor_outlives_it(
    tmp_path: Path,
) -> None:
    # The helper keeps the agent's stderr open and sleeps; the leader exits once it runs.
    helper = "import os, time; print(os.getpid(), flush=True); time.sleep(600)"
    script = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', {helper!r}], stdout=subprocess.PIPE); "
        "print('helper', p.stdout.readline().decode().strip(), flush=True)"
    )
    sink = Collector()
    result = await run_process(
        [sys.executable, "-c", script],
        stdin=b"",
        cwd=tmp_path,
        on_lines=sink,
        timeout=30,
        kill_grace=1,
    )
    assert result.exit_code == 0 and not result.timed_out
    [line] = sink.lines[LogStream.STDOUT]
    await wait_dead(int(line.removeprefix("helper ")), timeout=5)


async def test_without_inotify_the_output_is_read_on_a_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when fs.inotify.max_user_instances is used up by other processes of the user.
    monkeypatch.setattr(capture, "_inotify", lambda captures: -1)
    sink, code, _ = await run(tmp_path, "mixed", "3")
    assert code == 0
    assert sink.lines[LogStream.STDOUT] == ["out 0", "out 1", "out 2", "PLAN: mixed"]
    assert sink.lines[LogStream.STDERR] == ["err 0", "err 1", "err 2"]
