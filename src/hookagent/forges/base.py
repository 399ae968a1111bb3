"""The forge interface: open a change request, comment, fetch a thread, post a review."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

# ``owner/repo#12`` on GitHub, ``group/sub/project#12`` on GitLab (its own reference syntax).
_ISSUE_REF = re.compile(r"^(?P<repo>[\w.-]+(?:/[\w.-]+)+)#(?P<number>\d+)$")


@dataclass(frozen=True, slots=True)
class Thread:
    """An issue on a forge: its repository path and number (GitLab's ``iid``)."""

    repo: str
    number: int

    @classmethod
    def parse(cls, ref: str | None) -> Thread | None:
        """The issue a task's ``external_id`` (``repo#number``) names; None if it names none."""
        match = _ISSUE_REF.match(ref or "")
        return cls(match["repo"], int(match["number"])) if match else None

    @property
    def ref(self) -> str:
        """``repo#number``, as tasks and commands name the issue."""
        return f"{self.repo}#{self.number}"


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """An opened pull or merge request."""

    number: int
    url: str
    # How commands written on it arrive: ``owner/repo#41``, ``group/project!3``.
    ref: str
    # How the log names it: ``pull request #41``, ``merge request !3``.
    label: str


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment (GitLab: a note) on an issue."""

    comment_id: str
    body: str
    author: str = ""
    url: str = ""
    at: str = ""
    # GitLab's system notes ("added label ~bug") and comments by bot accounts.
    system: bool = False
    by_bot: bool = False


@dataclass(frozen=True, slots=True)
class PullInfo:
    """A pull or merge request as its forge describes it now: what a review reads."""

    number: int
    title: str
    body: str
    author: str
    base: str  # the branch it merges into
    head_sha: str
    # The ref the forge keeps of its head on the base repository (forks included).
    head_ref: str
    url: str = ""
    # GitLab's ``diff_refs``: where an inline discussion's position is anchored.
    base_sha: str = ""
    start_sha: str = ""


@dataclass(frozen=True, slots=True)
class InlineComment:
    """A review comment on line ``line`` of ``path`` in the request's new version."""

    path: str
    line: int
    body: str
    old_path: str = ""


@dataclass(frozen=True, slots=True)
class Review:
    """One review: a summary and comments on lines of the diff, of commit ``commit``."""

    body: str
    comments: tuple[InlineComment, ...]
    commit: str


@dataclass(frozen=True, slots=True)
class FailedCheck:
    """A failed check (GitHub: a check run; GitLab: a job): its name and what it reported.

    ``details``: its output and annotations (GitHub); ``log``: its log as the forge gave it
    (an Actions job's log, a GitLab job's trace). Neither capped nor redacted yet.
    """

    name: str
    details: str
    log: str


# Failed checks read per failure: the first ones name the problem.
MAX_FAILED_CHECKS = 5


class Forge(Protocol):
    """Where code lives: GitHub, GitLab; a third forge is one module implementing this."""

    name: str

    async def open_change_request(
        self, *, repo: str, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> ChangeRequest:
        """Open a pull/merge request from ``head`` into ``base``; PullRequestError if refused.

        ``draft``: opened as a draft (its tests failed), not ready to merge.
        """
        ...

    async def write_comment(self, thread: Thread, body: str) -> Comment:
        """Add a comment to the issue; OutboundError on failure."""
        ...

    async def edit_comment(self, thread: Thread, comment_id: str, body: str) -> Comment:
        """Replace the text of one of the issue's comments; OutboundError on failure."""
        ...

    async def fetch_thread(self, thread: Thread) -> list[Comment]:
        """The issue's comments, oldest first; OutboundError on failure."""
        ...

    async def comment_on_change(self, repo: str, number: int, body: str) -> Comment:
        """Add a comment to the pull/merge request ``number``; OutboundError on failure."""
        ...

    async def reply_in_review(self, repo: str, number: int, reply_to: str, body: str) -> Comment:
        """Reply in a review thread (GitHub: under a review comment; GitLab: a discussion)."""
        ...

    async def fetch_change_request(self, repo: str, number: int) -> PullInfo:
        """A pull/merge request as it is now; OutboundError on failure."""
        ...

    async def post_review(self, repo: str, pull: PullInfo, review: Review) -> str:
        """Post ``review`` on the request as one review; its URL. OutboundError on failure."""
        ...

    async def failed_checks(self, repo: str, sha: str, pipeline: str | None) -> list[FailedCheck]:
        """The failed checks of commit ``sha`` (GitLab: of ``pipeline``); OutboundError."""
        ...
