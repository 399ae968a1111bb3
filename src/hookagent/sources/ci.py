"""Failing checks on a branch hookagent pushed: the failure a CI fix round answers.

GitHub: ``check_run`` completed with conclusion ``failure`` or ``timed_out``, ``check_suite``
and ``workflow_run`` completed with ``failure``. GitLab: a Pipeline Hook whose status is
``failed``. Parsed before the source's own parser (sources/table.py): None for any other
event. What failed is not read here (no outbound call in a request): the worker reads the
checks of ``sha`` (GitHub) or the jobs of ``pipeline`` (GitLab) when the fix is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookagent.sources.base import Ignored, array, obj, require_object, text

BRANCH_PREFIX = "hookagent/"
_FAILED_RUN = frozenset({"failure", "timed_out"})
_GITHUB_EVENTS = {"check_run": "check_run", "check_suite": "check_suite",
                  "workflow_run": "workflow_run"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChecksFailed:
    """Checks failed on ``sha`` of ``branch`` in ``repository`` (forge ``source``).

    ``check``: what the forge calls the failure (a check's, suite's or workflow's name, or
    ``pipeline``); ``event_id``: the head sha and the check, suite or pipeline id, so the same
    failure delivered again (or under another header) is kept once. ``number``: the pull or
    merge request the payload names, when it names one.
    """

    source: str
    repository: str
    branch: str
    sha: str
    check: str
    event_id: str
    number: int | None = None
    pipeline: str | None = None

    def item(self) -> dict[str, Any]:
        """The feedback item a CI fix round starts from (its report is read by the worker)."""
        return {
            "id": self.event_id,
            "kind": "ci",
            "author": self.check,
            "body": "",
            "sha": self.sha,
            "pipeline": self.pipeline,
        }


def parse_github_checks(payload: Any, *, event: str | None) -> ChecksFailed | None:
    """A failed ``check_run``, ``check_suite`` or ``workflow_run``; None for other events."""
    name = _GITHUB_EVENTS.get(event or "")
    if name is None:
        return None
    body = require_object(payload)
    repo = text(obj(body.get("repository")).get("full_name"))
    run = obj(body.get(name))
    if text(body.get("action")) != "completed":
        raise Ignored(f"{name} {text(body.get('action')) or '?'} is not a completed one")
    conclusion = text(run.get("conclusion"))
    failed = _FAILED_RUN if name == "check_run" else frozenset({"failure"})
    if conclusion not in failed:
        raise Ignored(f"{name} concluded {conclusion or '(nothing)'}: nothing to fix")
    suite = obj(run.get("check_suite"))
    branch = text(run.get("head_branch")) or text(suite.get("head_branch"))
    sha = text(run.get("head_sha"))
    ident = text(run.get("id"))
    if not sha or not ident.isdigit():
        raise Ignored(f"{name} without a head sha or an id")
    pulls = [obj(p) for p in array(run.get("pull_requests"))]
    numbers = [p.get("number") for p in pulls if isinstance(p.get("number"), int)]
    return ChecksFailed(
        source="github",
        repository=repo,
        branch=_own(branch),
        sha=_sha(sha),
        check=text(run.get("name")) or name.replace("_", " "),
        event_id=f"ci:{sha}:{name}:{ident}",
        number=numbers[0] if numbers else None,
    )


def parse_gitlab_pipeline(payload: Any, *, event: str | None) -> ChecksFailed | None:
    """A Pipeline Hook whose pipeline failed; None for other events."""
    if event != "Pipeline Hook":
        return None
    body = require_object(payload)
    if text(body.get("object_kind")) != "pipeline":
        raise Ignored("a Pipeline Hook without a pipeline")
    pipeline = obj(body.get("object_attributes"))
    status = text(pipeline.get("status"))
    if status != "failed":
        raise Ignored(f"pipeline {status or '?'}: nothing to fix")
    sha, ident = text(pipeline.get("sha")), text(pipeline.get("id"))
    if not sha or not ident.isdigit():
        raise Ignored("a pipeline without a sha or an id")
    request = obj(body.get("merge_request"))
    iid = request.get("iid")
    return ChecksFailed(
        source="gitlab",
        repository=text(obj(body.get("project")).get("path_with_namespace")),
        branch=_own(text(pipeline.get("ref"))),
        sha=_sha(sha),
        check="pipeline",
        event_id=f"ci:{sha}:pipeline:{ident}",
        number=iid if isinstance(iid, int) and not isinstance(iid, bool) else None,
        pipeline=ident,
    )


def _own(branch: str) -> str:
    """``branch`` if hookagent pushes branches by that name; others' checks are not ours."""
    if not branch.startswith(BRANCH_PREFIX):
        raise Ignored(f"checks on {branch[:200] or '(no branch)'}, not a hookagent branch")
    return branch


def _sha(sha: str) -> str:
    if len(sha) not in (40, 64) or any(c not in "0123456789abcdef" for c in sha):
        raise Ignored("the head sha is not a commit id")
    return sha
