"""Outbound calls to code forges: open a change request, write or edit a comment, fetch a thread.

Each forge is one module implementing :class:`Forge`; adding one is that module and a line
in ``_FACTORIES``.
"""

from __future__ import annotations

from collections.abc import Callable

from hookagent.forges.base import (
    ChangeRequest,
    Comment,
    FailedCheck,
    Forge,
    InlineComment,
    PullInfo,
    Review,
    Thread,
)
from hookagent.forges.github import GitHubForge
from hookagent.forges.gitlab import GitLabForge
from hookagent.settings import Settings

_FACTORIES: dict[str, Callable[[Settings], Forge | None]] = {
    "github": GitHubForge.from_settings,
    "gitlab": GitLabForge.from_settings,
}
FORGE_NAMES = tuple(_FACTORIES)


def build_forges(settings: Settings) -> dict[str, Forge]:
    """Every forge the settings give a token for, by name."""
    built = {name: factory(settings) for name, factory in _FACTORIES.items()}
    return {name: forge for name, forge in built.items() if forge is not None}


__all__ = [
    "FORGE_NAMES",
    "ChangeRequest",
    "Comment",
    "FailedCheck",
    "Forge",
    "GitHubForge",
    "GitLabForge",
    "InlineComment",
    "PullInfo",
    "Review",
    "Thread",
    "build_forges",
]
