"""Each adapter recognises a run that ended on the model's quota, from what its CLI printed.

The events are those the real CLIs printed against the stubs answering 429/529 (Claude Code
2.1, Codex 0.169, Gemini CLI 0.61), trimmed to the fields that matter.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from hookagent.agents.base import AgentOutcome, AgentRun
from hookagent.agents.claude import ClaudeAgent, ClaudeRun
from hookagent.agents.codex import CodexAgent, CodexRun
from hookagent.agents.command import CommandRun
from hookagent.agents.gemini import GeminiAgent, GeminiRun
from hookagent.agents.quota import quota_in, retry_after
from hookagent.models import LogStream, Phase

SESSION = "9ff56013-2c0a-42c5-94a2-6cb494cef20d"


def finish(run: AgentRun, events: list[dict[str, Any]], exit_code: int) -> AgentOutcome:
    for event in events:
        run.parse(LogStream.STDOUT, json.dumps(event))
    return run.finish(exit_code)


def claude_result(status: int, text: str) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "api_error_status": status,
        "num_turns": 1,
        "result": text,
        "session_id": SESSION,
    }


def test_claude_429_after_its_retries_with_the_delay_the_api_asked() -> None:
    retry = {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 1,
        "max_retries": 1,
        "retry_delay_ms": 2000,
        "error_status": 429,
        "error": "rate_limit",
        "session_id": SESSION,
    }
    text = (
        "API Error: Request rejected (429) · Number of request tokens has exceeded your rate limit"
    )
    outcome = finish(ClaudeRun(), [retry, claude_result(429, text)], 1)
    assert not outcome.ok and outcome.quota is not None
    assert outcome.quota.retry_after_s == 2.0 and outcome.quota.reason == text
    assert outcome.stats["session_id"] == SESSION


def test_claude_overloaded_and_a_rejected_limit_resetting_later() -> None:
    resets = time.time() + 300
    limit = {
        "type": "rate_limit_event",
        "rate_limit_info": {"status": "rejected", "resetsAt": resets, "rateLimitType": "five_hour"},
    }
    outcome = finish(ClaudeRun(), [limit, claude_result(529, "API Error: 529 Overloaded")], 1)
    assert outcome.quota is not None
    assert outcome.quota.retry_after_s == pytest.approx(300, abs=5)


def test_claude_fails_on_anything_else() -> None:
    outcome = finish(ClaudeRun(), [claude_result(400, "API Error: 400 prompt is too long")], 1)
    assert not outcome.ok and outcome.quota is None


def test_codex_429_past_its_retries_but_not_a_reconnect_it_recovered_from() -> None:
    notice = {
        "type": "error",
        "message": "Reconnecting... 1/5 (last status: 429 Too Many Requests)",
    }
    failed = {"message": "exceeded retry limit, last status: 429 Too Many Requests"}
    events: list[dict[str, Any]] = [
        {"type": "thread.started", "thread_id": SESSION},
        {"type": "turn.started"},
        notice,
        {"type": "turn.failed", "error": failed},
    ]
    outcome = finish(CodexRun(), events, 1)
    assert outcome.quota is not None and "429" in outcome.quota.reason
    assert outcome.stats["session_id"] == SESSION
    recovered = [*events[:3], {"type": "turn.completed", "usage": {}}]
    assert finish(CodexRun(), recovered, 0).ok


def test_gemini_exhausted_quota_with_the_wait_it_asked() -> None:
    message = (
        "[API Error: You exceeded your current quota, please check your plan and billing "
        "details. Quota exceeded for metric: x, limit: 0. Please retry in 2.5s.]"
    )
    events: list[dict[str, Any]] = [
        {"type": "init", "session_id": SESSION, "model": "auto"},
        {"type": "result", "status": "error", "error": {"type": "unknown", "message": message}},
    ]
    outcome = finish(GeminiRun(), events, 1)
    assert outcome.quota is not None and outcome.quota.retry_after_s == 2.5
    assert outcome.stats["session_id"] == SESSION


def test_a_command_whose_last_line_says_429() -> None:
    run = CommandRun()
    run.parse_lines(LogStream.STDERR, ["starting", "error: 429 rate limit; retry after 30s"])
    outcome = run.finish(1)
    assert outcome.quota is not None and outcome.quota.retry_after_s == 30
    run = CommandRun()
    run.parse_lines(LogStream.STDERR, ["Traceback", "ValueError: bad input"])
    assert run.finish(1).quota is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("Retry-After: 30", 30),
        ("Please retry in 2.5s.", 2.5),
        ("try again in 1m30s", 90),
        ("try again in 500ms", 0.5),
        ("rate limit, try again later", None),
        ("retry after 99999999s", None),  # no wait is that long: a misread number
    ],
)
def test_the_wait_a_message_asks_for(text: str, seconds: float | None) -> None:
    assert retry_after(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "You've hit your usage limit. Try again at 3:45 PM.",
        "Claude AI usage limit reached|1767225600",
        "Overloaded",
        "RESOURCE_EXHAUSTED",
        "exceeded retry limit, last status: 429 Too Many Requests",
    ],
)
def test_quota_wording(text: str) -> None:
    assert quota_in(text) is not None


def test_each_cli_resumes_its_session_by_id() -> None:
    claude = ClaudeAgent("claude").argv(Phase.PLAN, resume=SESSION)
    assert claude[claude.index("--resume") + 1] == SESSION
    codex = CodexAgent("codex").argv(Phase.EXECUTE, resume=SESSION)
    assert codex[-3:] == ["resume", SESSION, "-"] and codex[:2] == ["codex", "exec"]
    gemini = GeminiAgent("gemini").argv(Phase.PLAN, resume=SESSION)
    assert gemini[gemini.index("--resume") + 1] == SESSION
    assert "--resume" not in ClaudeAgent("claude").argv(Phase.PLAN)
