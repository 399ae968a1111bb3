"""Codex and Gemini adapters on recordings written from their documented JSONL formats."""

from __future__ import annotations

import json
import tomllib
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
    assert (
        "tool result: read_file: app/export/csv.py: rows = rows[:-1]",
        EventKind.TOOL_RESULT,
    ) in lines
    assert (
        "tool error: run_shell_command: pytest -q tests/test_csv.py: exit code 1",
        EventKind.ERROR,
    ) in lines
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


def feed(
    run: CodexRun | GeminiRun, *events: dict[str, object]
) -> list[tuple[str, EventKind | None]]:
    """Parse ``events`` as the CLI prints them, one JSON object per line."""
    out = []
    for event in events:
        out += [(p.text, p.kind) for p in run.parse(LogStream.STDOUT, json.dumps(event))]
    return out


def test_codex_error_event_alone_does_not_fail_a_completed_turn() -> None:
    """What Codex 0.169 prints when it reconnects by itself: the run still succeeds."""
    run = CodexRun()
    lines = feed(
        run,
        {"type": "turn.started"},
        {"type": "error", "message": "Reconnecting... 1/5 (stream disconnected)"},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "## Plan"}},
        {"type": "turn.completed", "usage": {"input_tokens": 1, "output_tokens": 1}},
    )
    assert ("codex: Reconnecting... 1/5 (stream disconnected)", EventKind.ERROR) in lines
    outcome = run.finish(0)
    assert outcome.ok and outcome.plan == "## Plan"
    # Without a completed turn the last error is the reason.
    stopped = CodexRun()
    feed(stopped, {"type": "error", "message": "stream disconnected"})
    assert stopped.finish(1).error == "codex: stream disconnected"


def test_codex_home_names_the_configured_endpoint(tmp_path: Path) -> None:
    url = 'http://proxy.internal/v1"\nmodel_provider = "evil'  # cannot add a TOML key
    env = CodexAgent("codex", base_url=url).configure(tmp_path, {})
    assert env == {"CODEX_HOME": str(tmp_path / "codex"), "TMPDIR": str(tmp_path / "tmp")}
    config = tomllib.loads((tmp_path / "codex" / "config.toml").read_text())
    assert config["model_provider"] == "hookagent"
    assert config["model_providers"]["hookagent"] == {
        "name": "hookagent",
        "base_url": url,
        "env_key": "OPENAI_API_KEY",
        "wire_api": "responses",
    }
    # Codex refuses its sandbox helper when CODEX_HOME is under the temporary directory.
    assert not (tmp_path / "codex").is_relative_to(tmp_path / "tmp")


def test_gemini_trusts_the_fresh_clone_and_uses_its_own_home(tmp_path: Path) -> None:
    agent = GeminiAgent("gemini")
    for phase in Phase:
        assert "--skip-trust" in agent.argv(phase)
    env = agent.configure(tmp_path, {"GOOGLE_GEMINI_BASE_URL": "http://gemini.internal"})
    assert env["GEMINI_CLI_HOME"] == str(tmp_path / "gemini")
    # The operator's endpoint stays; what they did not set is pinned (a repository's
    # .gemini/.env cannot set it then).
    assert "GOOGLE_GEMINI_BASE_URL" not in env and env["HTTPS_PROXY"] == ""
    unset = agent.configure(tmp_path / "other", {})
    assert unset["GOOGLE_GEMINI_BASE_URL"] == "https://generativelanguage.googleapis.com"
    settings = json.loads((tmp_path / "gemini" / ".gemini" / "settings.json").read_text())
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"


def test_gemini_plan_is_the_last_message_and_results_name_their_call() -> None:
    run = GeminiRun()
    lines = feed(
        run,
        {"type": "message", "role": "assistant", "content": "Looking at the r", "delta": True},
        {"type": "message", "role": "assistant", "content": "epository first.", "delta": True},
        {"type": "tool_use", "tool_name": "write_file", "tool_id": "w1",
         "parameters": {"file_path": "NEW.md", "content": "x"}},
        {"type": "tool_result", "tool_id": "w1", "status": "success"},
        {"type": "message", "role": "assistant", "content": "## Plan", "delta": True},
        {"type": "message", "role": "assistant", "content": "\n\n- fix it", "delta": True},
        {"type": "result", "status": "success", "stats": {}},
    )  # fmt: skip
    assert ("tool result: write_file: NEW.md (no output)", EventKind.TOOL_RESULT) in lines
    outcome = run.finish(0)
    assert outcome.ok and outcome.plan == "## Plan\n\n- fix it"
    assert run.progress.turns == 2
