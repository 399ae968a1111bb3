"""The ``command`` adapter: every line is text, stdout up to a cap is the plan."""

from __future__ import annotations

from hookagent.agents import TextLines
from hookagent.agents.command import PLAN_MAX_CHARS, CommandAgent
from hookagent.models import EventKind, LogStream


def test_a_batch_is_text_lines_of_its_stream() -> None:
    run = CommandAgent(["true"]).start()
    assert run.parse_lines(LogStream.STDOUT, ["a", "b"]) == TextLines(
        LogStream.STDOUT, ["a", "b"], EventKind.TEXT
    )
    assert run.parse_lines(LogStream.STDERR, ["oops"]) == TextLines(LogStream.STDERR, ["oops"])
    outcome = run.finish(0)
    assert outcome.ok and outcome.plan == "a\nb"


def test_the_plan_cap_falls_where_it_does_line_by_line() -> None:
    # Batches that cross the cap mid-way keep the same lines as feeding them one by one.
    lines = [f"{i:05d}" + "x" * 994 for i in range(PLAN_MAX_CHARS // 1000 + 50)]
    single = CommandAgent(["true"]).start()
    for line in lines:
        single.parse(LogStream.STDOUT, line)
    batched = CommandAgent(["true"]).start()
    for start in range(0, len(lines), 37):
        batched.parse_lines(LogStream.STDOUT, lines[start : start + 37])
    plan = batched.finish(0).plan
    assert plan == single.finish(0).plan
    assert plan is not None and len(plan) == PLAN_MAX_CHARS
    assert plan.endswith(lines[PLAN_MAX_CHARS // 1000][: PLAN_MAX_CHARS % 1000])
