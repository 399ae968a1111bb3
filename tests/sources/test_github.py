"""GitHub issues and comment commands."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hookagent.models import NewTask
from hookagent.sources import Command, Feedback, Ignored, UnknownCommand, Verb, parse_github
from tests.helpers import FIXTURES


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def test_labelled_issue_starts_a_task() -> None:
    task = parse_github(fixture("github-issues-labeled.json"), event="issues", label="hookagent")
    assert isinstance(task, NewTask)
    assert (task.repository, task.external_id) == ("acme/payments-api", "acme/payments-api#412")
    assert "app/export/csv.py" in task.prompt


def test_other_labels_and_events_start_nothing() -> None:
    payload = fixture("github-issues-labeled.json")
    with pytest.raises(Ignored):
        parse_github(payload, event="issues", label="ai-fix")
    with pytest.raises(Ignored):
        parse_github(payload, event="push", label="hookagent")
    with pytest.raises(Ignored):
        parse_github({"zen": "x"}, event="ping", label="hookagent")


def test_comment_command() -> None:
    command = parse_github(fixture("github-issue-comment.json"), event="issue_comment", label="x")
    assert isinstance(command, Command)
    assert (command.ref, command.verb, command.text, command.actor) == (
        "acme/payments-api#413",
        Verb.APPROVE,
        "looks right, go ahead",
        "lee-lead",
    )


def test_only_the_login_names_the_commenter() -> None:
    """A profile ``name`` is free text: the approver check sees the login alone."""
    payload = fixture("github-issue-comment.json")
    payload["comment"]["user"] = {"login": "Mallory", "name": "lee-lead", "type": "User"}
    command = parse_github(payload, event="issue_comment", label="x")
    assert isinstance(command, Command)
    assert (command.actor_names, command.voter) == (("Mallory",), "github:mallory")


def test_comment_without_mention_or_with_unknown_word() -> None:
    payload = fixture("github-issue-comment.json")
    payload["comment"]["body"] = "nice work"
    with pytest.raises(Ignored):
        parse_github(payload, event="issue_comment", label="x")
    payload["comment"]["body"] = "@hookagent deploy now"
    # On a pull request, words that are no command are review feedback (tests/sources/
    # test_feedback.py); on an issue they are an unknown command.
    assert isinstance(parse_github(payload, event="issue_comment", label="x"), Feedback)
    del payload["issue"]["pull_request"]
    with pytest.raises(UnknownCommand):
        parse_github(payload, event="issue_comment", label="x")
