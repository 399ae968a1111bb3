"""The end of a change request hookagent opened: merged or closed without merging."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Ending(StrEnum):
    """How a pull or merge request ended."""

    MERGED = "merged"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ChangeEnded:
    """A forge says the change request ``ref`` (``owner/repo!41``) was merged or closed.

    ``event_id``: what makes this ending one event whatever delivery header carries it
    (``pr:<id>:merged``), so a signed delivery replayed under a new header changes nothing.
    ``actor``: who merged or closed it, for the log line only.
    """

    source: str
    ref: str
    ending: Ending
    actor: str
    event_id: str | None = None
    at: float | None = None
