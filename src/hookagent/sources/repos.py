"""Repository names a task may target: ``owner/name`` (or nested groups), from an allow-list."""

from __future__ import annotations

import re

from hookagent.errors import WorkspaceError

# Neither part may start with "-": a name goes into git's and ssh's command lines.
_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,99})/[A-Za-z0-9_.][A-Za-z0-9_.-]{0,99}$")
# One segment of a GitLab path: a group, a subgroup or the project.
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
# GitLab nests subgroups at most 20 deep; a path is at most 255 characters there.
MAX_SEGMENTS = 21
MAX_NESTED_CHARS = 255


def validate_repo(name: str, allowed: frozenset[str] = frozenset(), *, nested: bool = False) -> str:
    """``owner/name`` (``group/sub/project`` if ``nested``), optionally only from ``allowed``."""
    repo = name.strip().removesuffix(".git")
    if not (_nested_ok(repo) if nested else _flat_ok(repo)):
        form = "group/…/project" if nested else "owner/name"
        raise WorkspaceError(f"repository {name[:200]!r} is not of the form {form}")
    if allowed and repo.lower() not in allowed:
        raise WorkspaceError(f"repository {repo!r} is not in HOOKAGENT_ALLOWED_REPOS")
    return repo


def _flat_ok(repo: str) -> bool:
    return bool(_REPO.match(repo)) and ".." not in repo and repo.split("/")[1] not in {".", ""}


def _nested_ok(repo: str) -> bool:
    parts = repo.split("/")
    return (
        2 <= len(parts) <= MAX_SEGMENTS
        and len(repo) <= MAX_NESTED_CHARS
        and ".." not in repo
        and all(_SEGMENT.fullmatch(part) and not part.endswith(".") for part in parts)
    )
