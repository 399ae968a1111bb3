"""``hookagent up`` as a supervisor: API and workers in child processes, none left behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import fake_agent, wait_dead

STARTED = re.compile(r"started (api|worker-\d) \(pid (\d+)\)")


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Up:
    """A running ``hookagent up --workers 2`` whose output can be waited on line by line."""

    def __init__(self, data_dir: Path, remotes: Path, **extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
        env |= extra
        env |= {
            "HOOKAGENT_DATA_DIR": str(data_dir),
            "HOOKAGENT_GIT_URL_TEMPLATE": f"file://{remotes}/{{repo}}.git",
            "HOOKAGENT_AGENT": "command",
            "HOOKAGENT_AGENT_COMMAND": fake_agent("auto"),
            "HOOKAGENT_API_PROCESSES": "1",  # one "api" child, whatever the machine's cores
        }
        self.port = free_port()
        argv = [sys.executable, "-m", "hookagent.cli", "up", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*argv, "--workers", "2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<eof>")
            self._changed.notify_all()

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 60) -> int:
        """The index of the first line from ``after`` on matching ``pattern`` (waits for it)."""
        regex = re.compile(pattern)

        def found() -> int | None:
            return next(
                (i for i, line in enumerate(self.lines) if i >= after and regex.search(line)),
                None,
            )

        with self._changed:
            ok = self._changed.wait_for(
                lambda: found() is not None or "<eof>" in self.lines, timeout
            )
            index = found()
        assert ok and index is not None, f"no {pattern!r} in:\n{''.join(self.lines)}"
        return index

    def close(self) -> None:
        """Finish reading the output and close the pipe."""
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def children(self) -> dict[str, int]:
        """The latest pid of each role, from the ``started`` lines."""
        with self._changed:
            return {m[1]: int(m[2]) for m in map(STARTED.search, self.lines) if m}

    def all_children(self) -> list[int]:
        """Every direct child of ``up`` now, Valkey included."""
        path = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        with open(path) as listing:
            return [int(pid) for pid in listing.read().split()]


@pytest.fixture
def ups(tmp_path: Path, remotes: Path) -> Iterator[list[Up]]:
    """Starts ``up`` processes; kills whatever is left of them after the test."""
    started: list[Up] = []
    yield started
    for up in started:
        if up.proc.poll() is None:
            up.proc.kill()
        up.proc.wait(30)
        up.close()


@pytest.mark.timeout(120)
async def test_up_restarts_a_dead_worker_and_stops_api_then_workers(
    ups: list[Up], tmp_path: Path, remotes: Path
) -> None:
    up = Up(tmp_path / "data", remotes)
    ups.append(up)
    up.wait_for("Uvicorn running on")
    first = up.children()
    assert set(first) == {"api", "worker-1", "worker-2"}
    os.kill(first["worker-1"], signal.SIGKILL)
    died = up.wait_for(rf"worker-1 \(pid {first['worker-1']}\) exited with code -9; restarting")
    up.wait_for(r"started worker-1 \(pid", after=died)
    again = up.children()
    assert again["worker-1"] != first["worker-1"] and again["api"] == first["api"]
    everyone = up.all_children()
    assert len(everyone) == 4  # API, two workers, Valkey
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(60) == 0
    api_done = up.wait_for(r"api \(pid \d+\) stopped")
    workers_done = up.wait_for(r"worker-\d \(pid \d+\) stopped")
    assert api_done < workers_done  # the API stops accepting before the workers stop
    for pid in everyone:
        await wait_dead(pid, timeout=5)
    assert "Traceback" not in "".join(up.lines)


@pytest.mark.timeout(60)
async def test_a_sigkilled_up_leaves_no_process_behind(
    ups: list[Up], tmp_path: Path, remotes: Path
) -> None:
    up = Up(tmp_path / "data", remotes)
    ups.append(up)
    up.wait_for("Uvicorn running on")
    everyone = up.all_children()
    assert len(everyone) == 4
    up.proc.kill()
    # PDEATHSIG: the kernel signals each child when `up` dies.
    for pid in everyone:
        await wait_dead(pid, timeout=30)


@pytest.mark.timeout(120)
async def test_a_child_refusing_its_settings_stops_up_with_exit_2_not_a_restart_loop(
    ups: list[Up], tmp_path: Path, remotes: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("")
    up = Up(tmp_path / "data", remotes, HOOKAGENT_POLICY_FILE=str(policy))
    ups.append(up)
    up.wait_for("Uvicorn running on")
    # Both workers past their start (each has sent a heartbeat), so that only the restarted
    # one reads the file after it turns invalid. Nothing announces a heartbeat to this
    # test: /readyz is asked again for a bounded while.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{up.port}") as http:
        async with asyncio.timeout(60):
            while (await http.get("/readyz")).json().get("workers", 0) < 2:
                await asyncio.sleep(0.1)
    first = up.children()
    # The file turns invalid while up runs: the restarted worker refuses it (exit 2).
    policy.write_text("this is = not [toml")
    os.kill(first["worker-1"], signal.SIGKILL)
    assert up.proc.wait(60) == 2
    up.wait_for("<eof>")
    output = "".join(up.lines)
    assert output.count("error: ") == 1, output
    assert "worker-1 refused its settings (exit code 2); stopping everything" in output
    assert len(STARTED.findall(output)) == 4  # api, two workers, one restart: no loop
    assert "Traceback" not in output
