"""Repository names a task may target: ``owner/name``, optionally from an allow-list."""

from __future__ import annotations

import re

from hookagent.errors import WorkspaceError

_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,99})/[A-Za-z0-9_.-]{1,100}$")


def validate_repo(name: str, allowed: frozenset[str] = frozenset()) -> str:
    """``owner/name`` or :class:`WorkspaceError`; optionally only from ``allowed``."""
    repo = name.strip().removesuffix(".git")
    if not _REPO.match(repo) or ".." in repo or repo.split("/")[1] in {".", ""}:
        raise WorkspaceError(f"repository {name[:200]!r} is not of the form owner/name")
    if allowed and repo.lower() not in allowed:
        raise WorkspaceError(f"repository {repo!r} is not in HOOKAGENT_ALLOWED_REPOS")
    return repo
