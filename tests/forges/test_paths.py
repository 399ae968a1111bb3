"""Every id an outbound client puts in a URL path is one quoted segment, never a path."""

from __future__ import annotations

import pytest

from hookagent.errors import OutboundError
from hookagent.forges.base import Thread
from hookagent.forges.gitlab import _notes
from hookagent.forges.http import github_repo_path, segment
from hookagent.forges.sentry import SentryApi
from hookagent.notify.jira import issue_path

HOSTILE = "X-1/../../../rest/api/2/issue/SEC-7"


def test_a_jira_key_cannot_steer_the_rest_path() -> None:
    assert issue_path("PAY-231", "comment") == "/rest/api/2/issue/PAY-231/comment"
    assert issue_path(HOSTILE, "comment", "10000") == (
        "/rest/api/2/issue/X-1%2F..%2F..%2F..%2Frest%2Fapi%2F2%2Fissue%2FSEC-7/comment/10000"
    )
    assert issue_path("PAY-1?expand=x#y", "transitions") == (
        "/rest/api/2/issue/PAY-1%3Fexpand%3Dx%23y/transitions"
    )


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_dot_segments_are_refused(value: str) -> None:
    """Clients resolve ``..`` (and ``%2E%2E``) as a step up: no quoting makes it an id."""
    with pytest.raises(OutboundError, match="cannot name a resource in a URL"):
        segment(value)
    with pytest.raises(OutboundError):
        issue_path(value, "comment")


def test_github_owner_and_name_are_each_one_segment() -> None:
    assert github_repo_path("acme/payments-api") == "/repos/acme/payments-api"
    assert github_repo_path("ac me/a?b#c") == "/repos/ac%20me/a%3Fb%23c"
    for repo in ("acme/../../orgs/acme", "acme/..", "../x", "acme", "a/b/c"):
        with pytest.raises(OutboundError):
            github_repo_path(repo)


def test_gitlab_project_path_and_numbers_are_segments() -> None:
    assert _notes(Thread("group/sub/project", 7)) == (
        "/projects/group%2Fsub%2Fproject/issues/7/notes"
    )
    assert _notes(Thread("../../../user", 7)) == "/projects/..%2F..%2F..%2Fuser/issues/7/notes"


def test_sentry_ids_are_segments() -> None:
    api = SentryApi(api_url="https://sentry.example", token="t", timeout=30, org="acme/../x")
    assert api.latest_path("42/../../projects") == (
        "/api/0/organizations/acme%2F..%2Fx/issues/42%2F..%2F..%2Fprojects/events/latest/"
    )
    with pytest.raises(OutboundError):
        SentryApi(api_url="https://sentry.example", token="t", timeout=30).latest_path("..")
