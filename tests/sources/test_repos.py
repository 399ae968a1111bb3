"""Repository names: ``owner/name`` everywhere, nested GitLab group paths only when asked."""

from __future__ import annotations

import pytest

from hookagent.errors import WorkspaceError
from hookagent.sources.repos import validate_repo


@pytest.mark.parametrize("name", ["group/sub/project", "a/b/c/d/e", "g_1/sub.x/p-2.git"])
def test_nested_paths_only_with_nested(name: str) -> None:
    assert validate_repo(name, nested=True) == name.removesuffix(".git")
    with pytest.raises(WorkspaceError, match="owner/name"):
        validate_repo(name)


@pytest.mark.parametrize(
    "name",
    ["solo", "a//b", "a/../b", "a/b/", "/a/b", "a/b.", "-a/b", "a/b\n/c", "a b/c",
     "/".join(["g"] * 22), "g/" + "p" * 300],
)  # fmt: skip
def test_malformed_nested_paths_are_refused(name: str) -> None:
    with pytest.raises(WorkspaceError, match="group/…/project"):
        validate_repo(name, nested=True)


def test_allow_list_holds_for_nested_paths() -> None:
    allowed = frozenset({"group/sub/project"})
    assert validate_repo("Group/Sub/Project", allowed, nested=True) == "Group/Sub/Project"
    with pytest.raises(WorkspaceError, match="HOOKAGENT_ALLOWED_REPOS"):
        validate_repo("group/sub/other", allowed, nested=True)


@pytest.mark.parametrize("name", ["acme/-oProxyCommand", "acme/--upload-pack=x", "-x/y"])
def test_a_part_that_starts_with_a_dash_is_refused(name: str) -> None:
    with pytest.raises(WorkspaceError, match="is not of the form owner/name"):
        validate_repo(name)
