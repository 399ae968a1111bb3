"""Failed checks parsed from GitHub's check and workflow events and GitLab's Pipeline Hook."""

from __future__ import annotations

from typing import Any

import pytest

from hookagent.sources import Ignored
from hookagent.sources.ci import parse_github_checks, parse_gitlab_pipeline

SHA = "9f1c2ab3" * 5
BRANCH = "hookagent/task-1796432341419-31c13aa0b8d1"


def github(event: str, **run: Any) -> dict[str, Any]:
    body = {"id": 31, "name": "CI", "head_sha": SHA, "head_branch": BRANCH,
            "conclusion": "failure", "pull_requests": [{"number": 41}]} | run  # fmt: skip
    return {"action": "completed", event: body, "repository": {"full_name": "acme/api"}}


@pytest.mark.parametrize("event", ["check_suite", "workflow_run"])
def test_a_failed_suite_or_workflow_names_its_head(event: str) -> None:
    failed = parse_github_checks(github(event), event=event)
    assert failed is not None
    assert (failed.repository, failed.branch, failed.sha, failed.number) == (
        "acme/api", BRANCH, SHA, 41,
    )  # fmt: skip
    assert failed.event_id == f"ci:{SHA}:{event}:31"


def test_only_failures_of_hookagent_branches_count() -> None:
    assert parse_github_checks({"action": "created"}, event="issues") is None
    with pytest.raises(Ignored, match="concluded success"):
        parse_github_checks(github("check_suite", conclusion="success"), event="check_suite")
    with pytest.raises(Ignored, match="concluded timed_out"):  # a suite fails or not
        parse_github_checks(github("check_suite", conclusion="timed_out"), event="check_suite")
    with pytest.raises(Ignored, match="not a hookagent branch"):
        parse_github_checks(github("workflow_run", head_branch="main"), event="workflow_run")
    with pytest.raises(Ignored, match="not a commit id"):
        parse_github_checks(github("workflow_run", head_sha="HEAD~1"), event="workflow_run")
    timed_out = github("check_run", conclusion="timed_out", head_branch=None,
                       check_suite={"head_branch": BRANCH})  # fmt: skip
    assert parse_github_checks(timed_out, event="check_run") is not None


def test_a_failed_gitlab_pipeline() -> None:
    pipeline: dict[str, Any] = {"id": 77, "ref": BRANCH, "sha": SHA, "status": "failed"}
    hook = {"object_kind": "pipeline", "project": {"path_with_namespace": "acme/sub/api"},
            "object_attributes": pipeline}  # fmt: skip
    failed = parse_gitlab_pipeline(hook, event="Pipeline Hook")
    assert failed is not None and failed.pipeline == "77" and failed.number is None
    pipeline["status"] = "success"
    with pytest.raises(Ignored):
        parse_gitlab_pipeline(hook, event="Pipeline Hook")
    assert parse_gitlab_pipeline(hook, event="Note Hook") is None
