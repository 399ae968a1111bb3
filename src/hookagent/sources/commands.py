"""``@hookagent <command>`` in comments, and the command a webhook delivers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from hookagent.briefing.discussion import OWN_MARKER, is_own_comment

__all__ = [
    "OWN_MARKER",
    "Command",
    "UnknownCommand",
    "Verb",
    "is_own_comment",
    "parse_instruction",
    "parse_mention",
]


class Verb(StrEnum):
    """What a person asks hookagent to do from a comment or a transition."""

    APPROVE = "approve"
    REJECT = "reject"
    REVISE = "revise"
    STATUS = "status"
    CANCEL = "cancel"
    FIX_CI = "fix-ci"


_MENTION = re.compile(r"(?:^|\s)@hookagent\b[:,]?\s*(\S*)\s*(.*)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Command:
    """A command for the task ``ref`` points at, from ``actor`` (as the source names them).

    ``actor`` is for log lines only. ``actor_id`` is the identity the source vouches for and
    the person cannot rename (a GitHub or GitLab user id, a Jira accountId, a Linear user
    id): votes are counted under it. ``actor_names`` are the identities an approver list may
    name (never a display name). ``event_id``: the source's own id of the comment or
    transition (``comment:7781``), so a replay under a new delivery header is still the same
    command. ``created_at``: when the comment was written (epoch seconds), where the payload
    says; a decision written before the plan it would decide was ready decides nothing.
    """

    source: str
    ref: str
    verb: Verb
    text: str
    actor: str
    actor_names: tuple[str, ...]
    actor_id: str
    event_id: str | None = None
    created_at: float | None = None

    @property
    def voter(self) -> str:
        """Who casts the vote, as approvals count them: ``source:actor_id``."""
        return f"{self.source}:{self.actor_id}"


class UnknownCommand(Exception):
    """``@hookagent`` followed by a word that is not a command."""

    def __init__(self, word: str) -> None:
        super().__init__(word)
        self.word = word


def parse_mention(body: str) -> tuple[Verb, str] | None:
    """``(verb, rest)`` of the first ``@hookagent`` mention; None when there is none."""
    parsed = parse_instruction(body)
    if parsed is None:
        return None
    verb, rest, word = parsed
    if verb is None:
        raise UnknownCommand(word or "(nothing)")
    return verb, rest


def parse_instruction(body: str) -> tuple[Verb | None, str, str] | None:
    """``(verb, rest, word)`` of the first ``@hookagent`` mention; None when there is none.

    ``verb`` is None when the first word is no :class:`Verb`: then ``rest`` is all the text
    after the mention (on a change request, free text is review feedback) and ``word`` the
    first word as written.
    """
    match = _MENTION.search(body or "")
    if match is None:
        return None
    word = match.group(1).lower().strip(".,:;!")
    try:
        return Verb(word), match.group(2).strip(), word
    except ValueError:
        return None, f"{match.group(1)} {match.group(2)}".strip(), word


def mentioned(body: str) -> tuple[str, str] | None:
    """``(word, rest)`` after the first ``@hookagent`` mention, the word lower-cased; or None.

    For commands parsed apart from :class:`Verb` (``@hookagent review``: sources/reviews.py).
    """
    match = _MENTION.search(body or "")
    if match is None:
        return None
    return match.group(1).lower().strip(".,:;!"), match.group(2).strip()
