"""Every agent run parser on arbitrary output: readable lines and an outcome, never a raise.

Lines are random text, arbitrary JSON objects, and mutated events from the recordings; a
run then finishes with an arbitrary exit code. The outcome's stats end up in the task's
Redis hash (as strings) and the progress snapshot in SSE frames (as JSON), so both are
checked against what those readers accept.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookagent.agents import AgentLine, AgentOutcome, AgentRun, TextLines
from hookagent.agents.claude import ClaudeAgent
from hookagent.agents.codex import CodexAgent
from hookagent.agents.command import CommandAgent
from hookagent.agents.gemini import GeminiAgent
from hookagent.models import EventKind, LogStream, Task
from tests.strategies import Json, any_json, json_objects, load_json_lines, mutations, texts

# Half the profile's examples for each of the four adapters: a run is up to 8 lines.
EXAMPLES = max(1, settings().max_examples // 2)
RECORDINGS = Path(__file__).parent / "recordings"
RECORDED = load_json_lines(RECORDINGS.glob("*.jsonl"))

AGENTS: dict[str, Callable[[], AgentRun]] = {
    "claude": lambda: ClaudeAgent("claude").start(),
    "codex": lambda: CodexAgent("codex").start(),
    "gemini": lambda: GeminiAgent("gemini").start(),
    "command": lambda: CommandAgent(["true"]).start(),
}

EXTRA_TYPES = ["turn.failed", "error", "item.updated", "tool_result", "message", "init"]
EVENT_TYPES = sorted({str(event.get("type")) for event in RECORDED} | set(EXTRA_TYPES))

# Text that looks like JSON but is not, or is JSON of another type than an object.
NEAR_JSON = [
    "{",
    "}",
    "[]",
    "null",
    "1e999",
    "NaN",
    '"\\ud800"',
    '{"type": "result"',
    '{"type": "\\x41"}',
    '{"type": "\\u12"}',
    '{"type": "result", "result": "\\udfff"}',
    '{"type": "assistant", "message": {"content": "\\u0000"}}',
    "\x00\x1b[31m\r\x7f",
    "\ufeff{}",
]


@st.composite
def typed_events(draw: st.DrawFn) -> dict[str, Json]:
    """An arbitrary object carrying one of the event types the parsers dispatch on."""
    event = draw(json_objects)
    event["type"] = draw(st.sampled_from(EVENT_TYPES))
    return event


events = mutations(RECORDED) | mutations(RECORDED) | typed_events() | json_objects
json_lines = st.builds(
    lambda event, ascii_only: json.dumps(event, ensure_ascii=ascii_only), events, st.booleans()
)
lines = json_lines | json_lines | texts | st.sampled_from(NEAR_JSON) | any_json.map(json.dumps)
outputs = st.lists(
    st.tuples(st.sampled_from([LogStream.STDOUT, LogStream.STDOUT, LogStream.STDERR]), lines),
    max_size=8,
)
exit_codes = st.sampled_from([None, -9, -1, 0, 0, 1, 2, 127, 255]) | st.integers()

TASK_BASICS = {
    "task_id": "task-1",
    "source": "sentry",
    "repository": "acme/payments-api",
    "title": "t",
    "prompt": "p",
    "status": "discovering",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}


def check_line(line: AgentLine) -> None:
    assert isinstance(line, AgentLine)
    assert isinstance(line.stream, LogStream)
    assert isinstance(line.text, str)
    assert line.kind is None or isinstance(line.kind, EventKind)
    assert isinstance(line.raw, str)


def check_outcome(outcome: AgentOutcome) -> None:
    assert isinstance(outcome.ok, bool)
    for text in (outcome.plan, outcome.result, outcome.error):
        assert text is None or isinstance(text, str)
    assert not outcome.ok or outcome.error is None
    for name, value in outcome.stats.items():
        assert isinstance(name, str)
        assert type(value) in (str, int, float), (name, value)
        assert not isinstance(value, float) or math.isfinite(value), (name, value)
    # The worker stores the stats as strings in the task's hash; reading it must still work.
    stored = {name: str(value) for name, value in outcome.stats.items()}
    Task.from_hash({**TASK_BASICS, **stored}).model_dump_json()


def stdout(*events: str) -> list[tuple[LogStream, str]]:
    return [(LogStream.STDOUT, event) for event in events]


# Found by this test: token counts that are text, lists or NaN (int() raised); message
# content, tools, denials, changes and todo items that are not lists (iterated or len());
# a cost of 1e999 or 10**400 (float()/format raised, or Infinity in the SSE JSON);
# a Gemini duration_ms of true, stored as "True" where Task expects an int.
FOUND = [
    ("claude", 0, stdout(
        '{"type": "assistant", "message": {"content": 1, "usage": {"input_tokens": ":"}}}',
        '{"type": "system", "subtype": "init", "tools": 3}',
        '{"type": "result", "subtype": "success", "total_cost_usd": 1e999,'
        ' "permission_denials": 1}',
    )),
    ("claude", 1, stdout('{"type": "result", "total_cost_usd": 1' + "0" * 400 + "}")),
    ("codex", 0, stdout(
        '{"type": "turn.completed", "usage": {"input_tokens": [], "output_tokens": NaN}}',
        '{"type": "item.completed", "item": {"type": "file_change", "changes": true}}',
        '{"type": "item.started", "item": {"type": "todo_list", "items": 7}}',
    )),
    ("gemini", 0, stdout(
        '{"type": "result", "status": "success",'
        ' "stats": {"duration_ms": true, "input_tokens": "x"}}',
    )),
]  # fmt: skip


def replay(agent: str, output: list[tuple[LogStream, str]], exit_code: int | None) -> None:
    """Feed ``output`` to a fresh run of ``agent``, finish it, and check everything it made."""
    run = AGENTS[agent]()
    for stream, line in output:
        parsed = run.parse(stream, line)
        assert isinstance(parsed, list)
        for one in parsed:
            check_line(one)
        if stream is LogStream.STDERR:
            assert all(one.stream is LogStream.STDERR for one in parsed)
    json.dumps(run.progress.snapshot(), allow_nan=False)
    check_outcome(run.finish(exit_code))


@pytest.mark.parametrize(("agent", "exit_code", "output"), FOUND)
def test_found_by_fuzzing(agent: str, exit_code: int, output: list[tuple[LogStream, str]]) -> None:
    replay(agent, output, exit_code)


@pytest.mark.parametrize("agent", sorted(AGENTS))
@settings(max_examples=EXAMPLES)
@given(output=outputs, exit_code=exit_codes)
def test_any_output(agent: str, output: list[tuple[LogStream, str]], exit_code: int | None) -> None:
    replay(agent, output, exit_code)


def parse_in_batches(
    agent: str, output: list[tuple[LogStream, str]]
) -> tuple[list[AgentLine], AgentRun]:
    """What ``parse_lines`` makes of ``output``, fed as runs of lines of the same stream."""
    run = AGENTS[agent]()
    out: list[AgentLine] = []
    for stream, group in itertools.groupby(output, key=lambda item: item[0]):
        parsed = run.parse_lines(stream, [line for _, line in group])
        if isinstance(parsed, TextLines):
            out += [AgentLine(parsed.stream, text, parsed.kind) for text in parsed.texts]
        else:
            out += parsed
    return out, run


def parse_one_by_one(
    agent: str, output: list[tuple[LogStream, str]]
) -> tuple[list[AgentLine], AgentRun]:
    """What ``parse`` makes of ``output``, line by line."""
    run = AGENTS[agent]()
    return [one for stream, line in output for one in run.parse(stream, line)], run


@pytest.mark.parametrize("agent", sorted(AGENTS))
@settings(max_examples=EXAMPLES)
@given(output=outputs, exit_code=exit_codes)
def test_a_batch_parses_as_its_lines_one_by_one(
    agent: str, output: list[tuple[LogStream, str]], exit_code: int | None
) -> None:
    # The worker hands the adapter whole batches; the log must not depend on how lines came.
    batched, batch_run = parse_in_batches(agent, output)
    single, single_run = parse_one_by_one(agent, output)
    assert batched == single
    assert batch_run.progress.snapshot() == single_run.progress.snapshot()
    assert batch_run.finish(exit_code) == single_run.finish(exit_code)
