"""The end of a change request: GitHub ``pull_request`` closed, GitLab Merge Request Hook."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from hookagent.errors import PayloadError
from hookagent.sources import ChangeEnded, Ending, Ignored, parse_github, parse_gitlab
from tests.helpers import FIXTURES


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def github(payload: dict[str, Any]) -> ChangeEnded:
    ended = parse_github(payload, event="pull_request", label="hookagent")
    assert isinstance(ended, ChangeEnded)
    return ended


def gitlab(payload: dict[str, Any]) -> ChangeEnded:
    ended = parse_gitlab(payload, event="Merge Request Hook", label="hookagent")
    assert isinstance(ended, ChangeEnded)
    return ended


def test_merged_pull_request() -> None:
    ended = github(fixture("github-pull-request-closed.json"))
    assert (ended.source, ended.ref, ended.ending) == ("github", "acme/payments-api!41", "merged")
    assert (ended.actor, ended.event_id) == ("lee-lead", "pr:merged:2103949511")
    assert ended.at == datetime(2026, 3, 2, 15, 40, 51, tzinfo=UTC).timestamp()


def test_closed_without_merging_is_closed_by_its_sender() -> None:
    payload = fixture("github-pull-request-closed.json")
    payload["pull_request"].update(merged=False, merged_at=None, merged_by=None)
    payload["sender"] = {"login": "sam-dev", "id": 77, "type": "User"}
    ended = github(payload)
    assert (ended.ending, ended.actor, ended.event_id) == (
        Ending.CLOSED,
        "sam-dev",
        "pr:closed:2103949511",
    )


@pytest.mark.parametrize("action", ["opened", "synchronize", "reopened", "edited", ""])
def test_other_pull_request_actions_change_nothing(action: str) -> None:
    payload = fixture("github-pull-request-closed.json") | {"action": action}
    with pytest.raises(Ignored):
        parse_github(payload, event="pull_request", label="hookagent")


def test_merged_is_only_a_true_boolean() -> None:
    # A string "true" (or anything but JSON true) is not GitHub saying it merged.
    payload = fixture("github-pull-request-closed.json")
    payload["pull_request"]["merged"] = "true"
    assert github(payload).ending is Ending.CLOSED


def test_a_closing_time_that_is_no_time_is_a_422() -> None:
    payload = fixture("github-pull-request-closed.json")
    payload["pull_request"]["merged_at"] = "yesterday"
    with pytest.raises(PayloadError):
        parse_github(payload, event="pull_request", label="hookagent")


def test_merged_merge_request() -> None:
    ended = gitlab(fixture("gitlab-merge-request-merged.json"))
    assert (ended.source, ended.ref, ended.ending, ended.actor) == (
        "gitlab",
        "acme/platform/payments-api!1",
        Ending.MERGED,
        "lee-lead",
    )
    assert ended.event_id == "mr:merged:884211"
    assert ended.at == datetime(2026, 3, 2, 15, 40, 51, tzinfo=UTC).timestamp()


def test_closed_merge_request() -> None:
    payload = fixture("gitlab-merge-request-merged.json")
    payload["object_attributes"].update(action="close", state="closed")
    assert gitlab(payload).ending is Ending.CLOSED


@pytest.mark.parametrize("action", ["open", "update", "approved", "reopen", ""])
def test_other_merge_request_actions_change_nothing(action: str) -> None:
    payload = fixture("gitlab-merge-request-merged.json")
    payload["object_attributes"]["action"] = action
    with pytest.raises(Ignored):
        parse_gitlab(payload, event="Merge Request Hook", label="hookagent")


def test_merge_request_hook_must_carry_a_merge_request() -> None:
    payload = fixture("gitlab-merge-request-merged.json") | {"object_kind": "issue"}
    with pytest.raises(Ignored):
        parse_gitlab(payload, event="Merge Request Hook", label="hookagent")
