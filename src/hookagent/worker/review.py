"""A review task's run: read the request, check its head out, run the agent read-only, post.

The run is the planning phase's in every way that matters for safety: the same sandbox
(the workspace read-only under bwrap), the same permission mode, and hookagent never
commits or pushes anything from it. The request's head and base are fetched into
hookagent's private git directory, and the diff the prompt quotes and the lines comments
may land on are read from there, never from anything the agent can write. The answer is
redacted and posted as one review: comments on lines the diff does not show, past the
cap, or on files it does not touch go into the review's body instead.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hookagent.agents import Agent, AgentOutcome
from hookagent.briefing.review import ReviewAnswer, parse_review, review_prompt
from hookagent.errors import AgentError, OutboundError, WorkspaceError
from hookagent.forges import Forge, InlineComment, PullInfo, Review, build_forges
from hookagent.models import Phase, Task
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store.writer import LogWriter
from hookagent.worker.run import AgentSession
from hookagent.worker.workspace import Workspaces

# GitHub takes reviews of up to 65,536 characters; a comment beyond these caps is cut.
BODY_MAX_CHARS = 60_000
COMMENT_MAX_CHARS = 8_000
MAX_INLINE_COMMENTS = 50

# Called with the review's URL as soon as it is posted (before the task's status changes).
OnPosted = Callable[[str], Awaitable[None]]

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,\d+)? @@")


@dataclass(slots=True)
class DiffLines:
    """The lines of the new version a diff shows (added or context), per file."""

    lines: dict[str, set[int]] = field(default_factory=dict)
    old_paths: dict[str, str] = field(default_factory=dict)

    def shows(self, path: str, line: int) -> bool:
        """Whether a comment on ``line`` of ``path`` can sit in the diff."""
        return line in self.lines.get(path, ())


def diff_lines(diff: str) -> DiffLines:
    """The commentable lines of a unified ``git diff`` (``+++ b/<path>``, ``@@`` hunks)."""
    found = DiffLines()
    old, path, number = "", "", 0
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            path, number = "", 0
        elif line.startswith("--- "):
            old = line[len("--- a/") :] if line.startswith("--- a/") else ""
        elif line.startswith("+++ "):
            path = line[len("+++ b/") :] if line.startswith("+++ b/") else ""
            if path:
                found.lines.setdefault(path, set())
                found.old_paths[path] = old or path
        elif (hunk := _HUNK.match(line)) is not None:
            number = int(hunk["start"])
        elif path and number and line[:1] in {"+", " "}:
            found.lines[path].add(number)
            number += 1
    return found


def build_review(
    answer: ReviewAnswer,
    shown: DiffLines,
    *,
    commit: str,
    redactor: Redactor,
    header: str,
    mark: str = "",
) -> Review:
    """The review to post: placed comments inline, the others in the body; all redacted.

    ``mark`` ends the body and every comment: what makes them recognisably hookagent's own
    (its comments are never commands or review feedback to itself).
    """
    inline: list[InlineComment] = []
    unplaced: list[str] = []
    for remark in answer.remarks:
        body = redactor.redact(_cap(remark.body, COMMENT_MAX_CHARS)) + mark
        where = redactor.redact(f"{remark.path}:{remark.line}")
        if shown.shows(remark.path, remark.line) and len(inline) < MAX_INLINE_COMMENTS:
            old = shown.old_paths.get(remark.path, remark.path)
            inline.append(InlineComment(remark.path, remark.line, body, old_path=old))
        else:
            unplaced.append(f"**{where}**\n\n{body}")
    parts = [header, redactor.redact(answer.summary) or "(no summary)"]
    if unplaced:
        parts.append("Comments on lines outside the diff:\n\n" + "\n\n".join(unplaced))
    body = _cap("\n\n".join(parts), BODY_MAX_CHARS) + mark
    return Review(body=body, comments=tuple(inline), commit=commit)


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}\n\n[… cut at {limit} characters]"


@dataclass(frozen=True, slots=True)
class Reviewed:
    """How a review run ended: its outcome, and the task fields that record it."""

    outcome: AgentOutcome
    fields: dict[str, Any]


class ReviewRun:
    """Runs a review task's agent and posts its answer as one review."""

    def __init__(
        self,
        *,
        settings: Settings,
        workspaces: Workspaces,
        session: AgentSession,
        redactor: Redactor,
    ) -> None:
        self._settings = settings
        self._workspaces = workspaces
        self._session = session
        self._redactor = redactor
        self._forges = build_forges(settings)

    async def review(
        self,
        agent: Agent,
        task: Task,
        writer: LogWriter,
        *,
        settings: Settings,
        on_posted: OnPosted,
    ) -> Reviewed:
        """Fetch, check out, run the agent read-only, post; a failure is a failed outcome."""
        fields: dict[str, Any] = {"agent": agent.name}
        forge = self._forges.get(task.forge)
        number = task.reviewed_pr
        if forge is None or number is None:
            setting = f"HOOKAGENT_{task.forge.upper()}_TOKEN"
            error = f"no {setting}: hookagent cannot read the request or post a review"
            return Reviewed(AgentOutcome(ok=False, error=error), fields)
        try:
            outcome = await self._run(agent, forge, task, number, writer, settings, fields)
            if outcome.ok:
                await on_posted(str(fields["result"]))
        except (AgentError, WorkspaceError, OutboundError) as exc:
            outcome = AgentOutcome(ok=False, error=exc.message)
        return Reviewed(outcome, fields)

    async def _run(
        self,
        agent: Agent,
        forge: Forge,
        task: Task,
        number: int,
        writer: LogWriter,
        settings: Settings,
        fields: dict[str, Any],
    ) -> AgentOutcome:
        pull = await forge.fetch_change_request(task.repository, number)
        label = f"merge request !{number}" if task.forge == "gitlab" else f"pull request #{number}"
        path = await self._workspaces.clone(task.task_id, task.repository, task.forge)
        checkout = self._workspaces.checkout(path)
        start, head = await checkout.check_out_change(pull.head_ref, pull.base, task.forge)
        await writer.system(f"checked out {label} at {head[:12]} (base {pull.base})")
        diff = await checkout.commits_diff(start, head)
        await checkout.hand_over()
        prompt = review_prompt(
            repository=task.repository,
            source=task.source,
            label=label,
            base=pull.base,
            context=task.prompt,
            title=pull.title,
            body=pull.body,
            diff=diff,
        )
        session = self._session
        outcome = await session.run(agent, path, Phase.PLAN, prompt, writer, settings=settings)
        fields |= outcome.stats
        answer = (outcome.plan or outcome.result or "").strip()
        if outcome.ok and not answer:
            outcome.ok, outcome.error = False, "agent finished without a review"
        if not outcome.ok:
            return outcome
        await self._post(forge, task, pull, head, answer, diff, writer, fields)
        return outcome

    async def _post(
        self,
        forge: Forge,
        task: Task,
        pull: PullInfo,
        head: str,
        answer: str,
        diff: str,
        writer: LogWriter,
        fields: dict[str, Any],
    ) -> None:
        parsed = parse_review(answer)
        header = f"Review by hookagent (task {task.task_id}, agent {fields['agent']})."
        review = build_review(
            parsed,
            diff_lines(diff),
            commit=head,
            redactor=self._redactor,
            header=header,
            mark=f"\n\n<!-- hookagent:{task.task_id} -->",
        )
        url = await forge.post_review(task.repository, pull, review)
        moved = len(parsed.remarks) - len(review.comments)
        await writer.system(
            f"review posted: {url} ({len(review.comments)} inline comments, {moved} in the body)"
        )
        fields |= {"plan": self._redactor.redact(answer), "result": url}
