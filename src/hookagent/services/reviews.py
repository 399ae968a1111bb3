"""A review request becomes a review task: signed, from an allowed person, at most once.

``@hookagent review`` counts from the source's approvers and the repository policy's
``reviewers``; a pull request opened or pushed to counts where the policy says
``review_prs = true``, unless hookagent opened it. The task is queued like any other
(services/intake.py: dedupe, the queue cap, one atomic write), keyed on the comment's own
id or the request's head commit, so a delivery sent again asks for nothing new, and linked
to ``review:<repo>!<number>`` (never the request's own ``<repo>!<number>``, which names the
task that opened it), so one review of a request runs at a time.
"""

from __future__ import annotations

from hookagent.errors import NotAnApprover, SignatureError
from hookagent.models import NewTask, TaskKind, one_line
from hookagent.services.intake import Created, Duplicate, Intake, Outdated
from hookagent.sources.reviews import ReviewRequest
from hookagent.sources.table import SOURCES


def review_ref(repo: str, number: int) -> str:
    """What a review task is linked to: one open review per request."""
    return f"review:{repo}!{number}"


def request_label(forge: str, number: int) -> str:
    """``pull request #41`` (GitHub), ``merge request !3`` (GitLab)."""
    return f"merge request !{number}" if forge == "gitlab" else f"pull request #{number}"


class Reviews:
    """Turns review requests into review tasks."""

    def __init__(self, intake: Intake) -> None:
        self._intake = intake
        self._store = intake.store
        self._settings = intake.settings
        self._policies = intake.policies

    async def request(
        self, review: ReviewRequest, *, delivery: str | None, signed: bool
    ) -> Created | Duplicate | Outdated:
        """Queue a review task, or say why none is queued (403 for a person not allowed)."""
        source, repo = review.source, review.repository
        policy = self._policies.effective(repo)
        if review.automatic and not policy.review_prs:
            # Before the signature: most requests of most repositories ask for nothing.
            return Outdated(None, f"review_prs is off for {one_line(repo, 200)}")
        if not signed:
            known = SOURCES.get(source)
            setting = known.secret_setting if known else f"HOOKAGENT_{source.upper()}_SECRET"
            raise SignatureError(
                f"a review request needs a signed delivery: set {setting} and give the "
                "webhook the same secret"
            )
        label = request_label(source, review.number)
        if review.automatic:
            if await self._store.refs.task_for(source, f"{repo}!{review.number}"):
                return Outdated(None, f"hookagent opened {label}; it does not review its own")
        elif not policy.may_review(review.actor_names, self._settings.approvers(source)):
            approvers = f"HOOKAGENT_{source.upper()}_APPROVERS"
            raise NotAnApprover(
                f"{one_line(review.actor, 200)} may not ask for reviews "
                f"(not in {approvers} nor the policy's reviewers)"
            )
        new = NewTask(
            source=source,
            forge=source,
            kind=TaskKind.REVIEW,
            repository=repo,
            title=one_line(f"Review {label}: {review.title}", 300),
            prompt=_context(review, label),
            external_id=review_ref(repo, review.number),
            url=review.url,
            reviewed_pr=review.number,
        )
        # The comment's own id (or the request and its head): a replay under any header.
        return await self._intake.new_task(new, delivery=review.event_id or delivery, signed=True)


def _context(review: ReviewRequest, label: str) -> str:
    """Why the review runs: who asked and what for (the worker adds the request itself)."""
    if review.automatic:
        return f"{label} was opened or updated by {review.actor} (policy review_prs)."
    asked = f"{review.actor} asked for a review of {label}."
    if not review.text:
        return asked
    return f"{asked}\n\nWhat they wrote after @hookagent review:\n{review.text}"
