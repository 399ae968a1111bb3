"""The Claude Code adapter on recorded stream-json output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from hookagent.agents.claude import ClaudeAgent, ClaudeRun
from hookagent.models import EventKind, LogStream, Phase
from tests.e2e.test_claude_code import claude_bin

RECORDINGS = Path(__file__).parent / "recordings"


def replay(name: str) -> tuple[ClaudeRun, list[tuple[str, EventKind | None, str]]]:
    run = ClaudeAgent("claude").start()
    out = []
    for line in (RECORDINGS / name).read_text().splitlines():
        for parsed in run.parse(LogStream.STDOUT, line):
            out.append((parsed.text, parsed.kind, parsed.raw))
    return run, out


def test_argv_streams_json_in_plan_mode_with_options() -> None:
    agent = ClaudeAgent("/opt/claude", model="sonnet", max_turns=5, extra_args=["--debug"])
    assert agent.argv(Phase.PLAN) == [
        "/opt/claude", "-p", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "plan", "--model", "sonnet", "--max-turns", "5", "--debug",
    ]  # fmt: skip


def test_budget_is_passed_to_the_cli_in_both_phases() -> None:
    agent = ClaudeAgent("claude", max_budget_usd=2.5)
    for phase in Phase:
        argv = agent.argv(phase)
        assert argv[argv.index("--max-budget-usd") + 1] == "2.5"
    assert "--max-budget-usd" not in ClaudeAgent("claude").argv(Phase.EXECUTE)


def test_the_real_cli_knows_the_budget_flag() -> None:
    """The flag we pass exists in the pinned Claude Code (an unknown flag would fail runs)."""
    shown = subprocess.run(
        [claude_bin(), "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "--max-budget-usd" in shown.stdout


def test_real_cli_recording_becomes_readable_lines() -> None:
    run, out = replay("claude-bash-plan.jsonl")
    texts = [t for t, _, _ in out]
    assert texts[0].startswith("session ") and "permission mode plan" in texts[0]
    assert "Bash: cat README.md" in texts
    assert "tool result: # Hello readme" in texts
    assert "Plan: fix it" in texts
    assert texts[-1].startswith("result (success, 2 turns, $0.0003")
    assert all(raw for _, _, raw in out), "each event keeps its raw JSON once"
    outcome = run.finish(0)
    assert outcome.ok
    assert outcome.plan == "Plan: fix it"
    assert outcome.stats["num_turns"] == 2
    assert outcome.stats["session_id"] == run.session_id


def test_exit_plan_mode_plan_wins_over_result_text() -> None:
    run, out = replay("claude-exit-plan.jsonl")
    kinds = [k for _, k, _ in out]
    assert EventKind.THINKING in kinds and EventKind.TOOL_USE in kinds and EventKind.ERROR in kinds
    assert any(t.startswith("Read: /srv/ws/app/reports/monthly.py") for t, _, _ in out)
    outcome = run.finish(0)
    assert outcome.ok
    assert outcome.plan is not None and outcome.plan.startswith("1. Return 0 when orders is empty")
    assert outcome.stats == {
        "session_id": "5d1c0f3a-1111-4c2b-9a7e-0f0e0d0c0b0a",
        "num_turns": 3,
        "total_cost_usd": 0.0421,
        "duration_ms": 8123,
    }


def test_plan_from_permission_denials_when_no_exit_plan_event_was_seen() -> None:
    run = ClaudeRun()
    result = json.loads((RECORDINGS / "claude-exit-plan.jsonl").read_text().splitlines()[-1])
    run.parse(LogStream.STDOUT, json.dumps(result))
    assert run.finish(0).plan == result["permission_denials"][0]["tool_input"]["plan"]


def test_is_error_means_failure_even_with_success_subtype() -> None:
    run = ClaudeRun()
    event = {"type": "result", "subtype": "success", "is_error": True, "result": "API Error: 401"}
    run.parse(LogStream.STDOUT, json.dumps(event))
    outcome = run.finish(0)
    assert not outcome.ok
    assert outcome.error == "claude: API Error: 401"


def test_no_result_event_is_a_failure_with_the_exit_code() -> None:
    run = ClaudeRun()
    run.parse(LogStream.STDOUT, "not json at all")
    outcome = run.finish(1)
    assert not outcome.ok
    assert outcome.error == "claude exit code 1, no result event"


def test_non_json_and_unknown_events_are_kept_raw() -> None:
    run = ClaudeRun()
    [plain] = run.parse(LogStream.STDOUT, "Warning: something")
    assert (plain.text, plain.kind) == ("Warning: something", EventKind.RAW)
    [unknown] = run.parse(LogStream.STDOUT, '{"type": "stream_event", "event": {}}')
    assert unknown.kind is EventKind.RAW and unknown.raw
    [err] = run.parse(LogStream.STDERR, "boom")
    assert (err.stream, err.text) == (LogStream.STDERR, "boom")


def test_progress_counts_turns_tools_files_todos_tokens_and_cost() -> None:
    run, _ = replay("claude-todos.jsonl")
    assert run.progress.snapshot() == {
        "turns": 4,
        "tool_calls": {"TodoWrite": 2, "Edit": 1},
        "files_touched": ["/srv/ws/app.py"],
        "todos": {"done": 1, "total": 2},
        "todo_items": [
            {"content": "Guard empty list", "status": "completed"},
            {"content": "Add test", "status": "in_progress"},
        ],
        "tokens": {"input": 4900, "output": 200},
        "cost_usd": 0.0123,
        "lines": 0,
    }
