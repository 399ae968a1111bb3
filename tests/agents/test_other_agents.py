"""Codex and Gemini adapters on recordings written from their documented JSONL formats."""

from __future__ import annotations

import json
from pathlib import Path

from hookagent.agents import build_agent
from hookagent.agents.codex import CodexAgent, CodexRun
from hookagent.agents.gemini import STDIN_PROMPT, GeminiAgent, GeminiRun
from hookagent.models import EventKind, LogStream, Phase
from hookagent.settings import Settings

RECORDINGS = Path(__file__).parent / "recordings"


def replay(run: CodexRun | GeminiRun, name: str) -> list[tuple[str, EventKind | None]]:
    out = []
    for line in (RECORDINGS / name).read_text().splitlines():
        out += [(parsed.text, parsed.kind) for parsed in run.parse(LogStream.STDOUT, line)]
    return out


def test_codex_argv_reads_the_prompt_from_stdin() -> None:
    agent = CodexAgent("codex", model="gpt-5-codex")
    assert agent.argv(Phase.PLAN)[-1] == "-"
    assert "read-only" in agent.argv(Phase.PLAN) and "workspace-write" in agent.argv(Phase.EXECUTE)


def test_codex_events() -> None:
    run = CodexRun()
    lines = replay(run, "codex-exec.jsonl")
    assert ("Bash: bash -lc 'cat app/reports/monthly.py'", EventKind.TOOL_USE) in lines
    assert ("tool error (exit 1): 1 failed", EventKind.ERROR) in lines
    assert ("Edit: update app/reports/monthly.py", EventKind.TOOL_USE) in lines
    assert ("something.new", EventKind.RAW) in lines, "unknown events are kept raw"
    assert lines[-1] == ("turn completed (24763 in, 122 out)", EventKind.RESULT)
    outcome = run.finish(0)
    assert outcome.ok and outcome.plan is not None and outcome.plan.startswith("Plan: return 0")
    progress = run.progress.snapshot()
    assert progress["todos"] == {"done": 1, "total": 2}
    assert progress["files_touched"] == ["app/reports/monthly.py"]
    assert progress["tokens"] == {"input": 24763, "output": 122}


def test_codex_turn_failed() -> None:
    run = CodexRun()
    run.parse(
        LogStream.STDOUT, json.dumps({"type": "turn.failed", "error": {"message": "rate limited"}})
    )
    outcome = run.finish(1)
    assert not outcome.ok and outcome.error == "codex: rate limited"


def test_gemini_events() -> None:
    agent = GeminiAgent("gemini")
    assert agent.argv(Phase.PLAN)[:3] == ["gemini", "-p", STDIN_PROMPT]
    run = GeminiRun()
    lines = replay(run, "gemini-stream.jsonl")
    assert ("read_file: app/export/csv.py", EventKind.TOOL_USE) in lines
    assert ("tool error: exit code 1", EventKind.ERROR) in lines
    assert ("warning: Loop detection skipped", EventKind.ERROR) in lines
    assert lines[-1] == ("result (success, 5210 tokens, 5000 ms)", EventKind.RESULT)
    outcome = run.finish(0)
    assert outcome.ok and outcome.plan == "Plan: stop dropping the last row in app/export/csv.py."
    assert outcome.stats["duration_ms"] == 5000
    assert run.progress.snapshot()["tool_calls"] == {"read_file": 1, "run_shell_command": 1}


def test_gemini_without_success_fails() -> None:
    run = GeminiRun()
    run.parse(
        LogStream.STDOUT,
        json.dumps({"type": "result", "status": "error", "error": {"message": "quota"}}),
    )
    assert run.finish(0).error == "gemini: quota"
    assert GeminiRun().finish(2).error == "gemini exit code 2, status None"


def test_agent_is_chosen_by_setting() -> None:
    assert build_agent(Settings(agent="codex")).name == "codex"
    assert build_agent(Settings(agent="gemini")).name == "gemini"
