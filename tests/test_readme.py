"""The README's quick start: what it names exists, and pasted into bash it works end to end."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK_START_DEMO = "DEMO=/tmp/hookagent-demo"


def quick_start() -> str:
    """The first bash block under the README's "Quick start" heading."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no bash block under ## Quick start"
    return match.group(1)


def test_quick_start_names_files_that_ship() -> None:
    block = quick_start()
    named = set(re.findall(r"examples/[\w./-]+", block))
    assert "examples/agent.py" in named and any(p.endswith(".json") for p in named)
    for path in named:
        assert (ROOT / path).is_file(), path
    for path in re.findall(r"examples/webhooks/[\w.-]+\.json", (ROOT / "README.md").read_text()):
        assert (ROOT / path).is_file(), path
    assert "bash scripts/up.sh" in block and (ROOT / "scripts" / "up.sh").is_file()
    assert QUICK_START_DEMO in block
    syntax = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
def test_quick_start_runs_end_to_end(tmp_path: Path) -> None:
    """The block as written, bar three substitutions so it cannot collide with anything.

    Its own port and demo dir instead of :8000 and /tmp/hookagent-demo, and this
    interpreter instead of scripts/up.sh's install step and .venv/bin/hookagent.
    """
    port, demo = free_port(), tmp_path / "demo"
    hookagent = f"{shlex.quote(sys.executable)} -m hookagent.cli"
    script = (
        quick_start()
        .replace(QUICK_START_DEMO, f"DEMO={shlex.quote(str(demo))}")
        .replace("localhost:8000", f"localhost:{port}")
        .replace("bash scripts/up.sh", f"{hookagent} up")
        .replace(".venv/bin/hookagent", hookagent)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKAGENT_")}
    env |= {"HOOKAGENT_PORT": str(port), "HOOKAGENT_URL": f"http://127.0.0.1:{port}"}
    # A session of its own, so whatever the block started can be killed if it goes wrong.
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    server_log = demo / "server.log"
    assert proc.returncode == 0, output + (server_log.read_text() if server_log.exists() else "")
    assert "pending_approval" in output and "Plan:" in output
    assert "— task completed —" in output
    assert "HOOKAGENT_NOTES.md" in output  # git log --stat of the pushed branch
    assert "Traceback" not in server_log.read_text()
    # The block stopped its server: nothing is left holding its data dir.
    leftovers = subprocess.run(["pgrep", "-f", str(demo)], capture_output=True, text=True)
    assert leftovers.stdout == "", leftovers.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "examples" / "webhooks").iterdir()))
def test_example_payloads_are_json(name: str) -> None:
    text = (ROOT / "examples" / "webhooks" / name).read_text()
    assert "acme/payments-api" in text
    json.loads(text)
