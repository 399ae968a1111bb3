"""The subprocess runner against real processes (the fake agent)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

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
