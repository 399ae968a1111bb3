"""What happens to a parsed delivery: dedupe, then a new task or a command on an existing one."""

from __future__ import annotations

import time
from datetime import datetime

from hookagent.errors import (
    ConflictError,
    NotAnApprover,
    QueueFull,
    RateLimited,
    SignatureError,
    TaskNotFound,
)
from hookagent.json_values import clip_prompt
from hookagent.models import (
    CHANGE_OPEN,
    TERMINAL_STATUSES,
    ActionResult,
    NewTask,
    Task,
    TaskStatus,
    one_line,
)
from hookagent.policy import Policies
from hookagent.redact import Redactor
from hookagent.services.cifix import CiFixes
from hookagent.services.lifecycle import Lifecycle
from hookagent.services.outcomes import (
    Applied,
    Created,
    Duplicate,
    Gathered,
    Outcome,
    Outdated,
    Reported,
)
from hookagent.settings import Settings
from hookagent.sources import ChangeEnded, Command, Ending, Feedback, Verb
from hookagent.sources.repos import validate_repo
from hookagent.sources.table import SOURCES
from hookagent.store import Marks, Store

__all__ = [
    "DECISIONS",
    "Applied",
    "Created",
    "Duplicate",
    "Gathered",
    "Intake",
    "Outcome",
    "Outdated",
    "Reported",
]

# Deliveries for one incident racing each other: each round one of them creates the task.
MAX_ROUNDS = 8
# What a sender refused by HOOKAGENT_MAX_QUEUED is told to wait before retrying.
QUEUE_FULL_RETRY_AFTER_S = 30


# The verbs that decide on a plan: only a comment written after the plan was ready may.
DECISIONS = frozenset({Verb.APPROVE, Verb.REJECT, Verb.REVISE})


class Intake:
    """Turns deliveries into tasks or lifecycle actions, at most once per delivery."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        redactor: Redactor | None = None,
        policies: Policies | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.policies = policies or Policies.from_settings(settings)
        self._lifecycle = Lifecycle(store, settings, redactor=redactor, policies=self.policies)
        self.ci = CiFixes(store, settings, policies=self.policies, lifecycle=self._lifecycle)

    async def count(self, source: str) -> None:
        """Count a verified delivery against ``HOOKAGENT_RATE_LIMIT`` for its source."""
        counted = await self.store.rates.count(source)
        if not counted.allowed:
            raise self._limited(source, counted.retry_after_s)

    def _limited(self, source: str, retry_after_s: int) -> RateLimited:
        return RateLimited(
            f"more than {self.store.rates.limit} deliveries from {source} this minute "
            "(HOOKAGENT_RATE_LIMIT); retry later",
            retry_after_s=retry_after_s,
        )

    async def new_task(
        self,
        new: NewTask,
        *,
        delivery: str | None,
        signed: bool,
        count: bool = False,
        webhook: str = "",
    ) -> Created | Duplicate:
        """Queue a task, unless this delivery or an open task for the same incident exists.

        ``signed``: the delivery's signature verified. Unsigned ones are refused when
        signatures are required. ``count``: count it against its source's rate first (as
        :meth:`count`); ``webhook``: the source a new task is counted under as a created
        webhook, when the store does it in the same step (else the caller counts). The
        marks are claimed only for a task that exists, and a mark whose task does not exist
        is stale, so a failure anywhere leaves nothing that blocks the sender's retry
        (TaskStore.create_marked).
        """
        if not signed and self.settings.signatures_required:
            raise SignatureError(
                f"unsigned delivery refused (HOOKAGENT_REQUIRE_SIGNATURES): set "
                f"{_secret_setting(new.source)} and give the webhook the same secret"
            )
        try:
            # Nested group paths are GitLab's; anywhere else they would be a malformed name.
            new.repository = validate_repo(
                new.repository, self.settings.allowed_repo_set, nested=new.forge == "gitlab"
            )
        except Exception:
            if count:
                await self.count(new.source)  # over the rate: that answer wins
            raise
        one_trip = self.store.intake
        if one_trip is not None:
            reply = await one_trip.create(
                new, delivery=delivery, count=count, cap=self.settings.max_queued, webhook=webhook
            )
            if reply.task is not None:
                return Created(reply.task, counted=bool(webhook))
            if reply.verdict == "limited":
                raise self._limited(new.source, self.store.rates.retry_after())
            if reply.verdict == "full":
                raise self._queue_full(reply.count)
            count = False  # a mark exists ("seen"): counted; decided step by step below
        if count:
            await self.count(new.source)
        return await self._new_task_stepwise(new, delivery)

    async def _new_task_stepwise(self, new: NewTask, delivery: str | None) -> Created | Duplicate:
        """:meth:`new_task` in steps that each stay on one cluster slot (store/intake.py)."""
        refs, ref = self.store.refs, new.external_id
        for _ in range(MAX_ROUNDS):
            by_delivery, by_ref = await refs.seen(new.source, delivery=delivery, ref=ref)
            regressed: Task | None = None
            if by_delivery and (found := await self._find(by_delivery)) is not None:
                if not _recurs(new, found):
                    return Duplicate(found.task_id, found.status, "delivery seen before")
                regressed = found
            if by_ref and (found := await self._find(by_ref)) is not None:
                if found.status not in TERMINAL_STATUSES:
                    if delivery:
                        await refs.mark_delivery(new.source, delivery, found.task_id)
                    return Duplicate(found.task_id, found.status, "an open task exists for it")
                regressed = found if _recurs(new, found) else regressed
            await self._check_room()
            marks = Marks(new.source, delivery, ref, seen_delivery=by_delivery, seen_ref=by_ref)
            task = await self.store.tasks.create_marked(_regression(new, regressed), marks)
            if task is not None:
                if regressed is not None:
                    await self._lifecycle.say(
                        regressed.task_id, f"regressed after merge: {task.task_id}"
                    )
                return Created(task)
        raise ConflictError("too many simultaneous deliveries for this incident; retry")

    async def command(self, command: Command, *, delivery: str | None, signed: bool) -> Outcome:
        """Apply ``@hookagent <verb>`` (or a transition) to the task the source object maps to.

        Only from a delivery whose signature verified (``signed``), whatever else is
        configured: anyone who can reach the endpoint can claim to be an approver.
        """
        if not signed:
            raise SignatureError(
                f"commands need a signed delivery: set {_secret_setting(command.source)} "
                "and give the webhook the same secret"
            )
        refs, source, event_id = self.store.refs, command.source, command.event_id
        # The delivery header and the source's own comment id: a signed comment resent under
        # a new header is the same comment, and commands nothing a second time.
        seen = await refs.claim_command(
            source, delivery=delivery, event_id=event_id, verb=command.verb
        )
        if seen is not None:
            return Duplicate(None, None, seen)
        try:
            return await self._command(command)
        except (ConflictError, NotAnApprover, TaskNotFound):
            raise  # a decided refusal: the same delivery again is refused the same way
        except BaseException:
            # Anything else (Redis gone, a bug): the sender's retry must not be a duplicate.
            await refs.forget_command(source, delivery=delivery, event_id=event_id)
            raise

    async def change_ended(
        self, ended: ChangeEnded, *, delivery: str | None, signed: bool
    ) -> Applied | Duplicate | Outdated:
        """The forge says the change request a task opened was merged or closed: end the task.

        Only from a signed delivery, like a command: an unsigned one could end any task.
        Requests no task opened (most of a repository's) are ignored; a task that cannot end
        now (it is still executing, or was cancelled) says so in its log and is left as is.
        """
        if not signed:
            raise SignatureError(
                f"a change request's end needs a signed delivery: set "
                f"{_secret_setting(ended.source)} and give the webhook the same secret"
            )
        refs, source = self.store.refs, ended.source
        task_id = await refs.task_for(source, ended.ref)
        if not task_id:
            return Outdated(None, f"no task opened {source} {one_line(ended.ref, 200)}")
        seen = await refs.claim_command(
            source, delivery=delivery, event_id=ended.event_id, verb=ended.ending.value
        )
        if seen is not None:
            return Duplicate(None, None, seen)
        try:
            return await self._end(task_id, ended)
        except BaseException:
            await refs.forget_command(source, delivery=delivery, event_id=ended.event_id)
            raise

    async def feedback(
        self, feedback: Feedback, *, delivery: str | None, signed: bool
    ) -> Gathered | Duplicate | Outdated:
        """Keep review feedback on a change request a task opened for the task's next round.

        Only from a signed delivery, and only from someone allowed to drive the task: the
        source's approvers or the repository policy's ``reviewers``. Anyone else's comment
        changes nothing (one log line says so). Stored once per comment id.
        """
        if not signed:
            raise SignatureError(
                f"review feedback needs a signed delivery: set "
                f"{_secret_setting(feedback.source)} and give the webhook the same secret"
            )
        source = feedback.source
        task_id = await self.store.refs.task_for(source, feedback.ref)
        if not task_id:
            return Outdated(None, f"no task opened {source} {one_line(feedback.ref, 200)}")
        task = await self.store.tasks.get(task_id)
        who = f"review feedback from {source} by {one_line(feedback.actor, 200)}"
        if not self._may_review(task, feedback):
            reason = (
                f"not in HOOKAGENT_{source.upper()}_APPROVERS nor the reviewers "
                f"of {task.repository}'s policy"
            )
            await self._lifecycle.say(task_id, f"{who} ignored: {reason}")
            return Outdated(task_id, f"{one_line(feedback.actor, 200)} is {reason}")
        if task.status not in CHANGE_OPEN:
            return Outdated(task_id, f"task {task_id} is {task.status}: its change is not open")
        # The delivery header is not the key: a replay under a new header is the same comment.
        added = await self.store.reviews.add(
            task_id, feedback.item(), feedback_id=feedback.feedback_id or delivery,
            now_ms=int(time.time() * 1000),
        )  # fmt: skip
        if not added.added:
            return Duplicate(None, None, "feedback seen before")
        where = f" on {feedback.path}:{feedback.line}" if feedback.path else ""
        await self._lifecycle.say(task_id, f"{who}{where}: kept for the next review round")
        return Gathered(task_id, added.queued)

    def _may_review(self, task: Task, feedback: Feedback) -> bool:
        """Whether the author is one of the source's approvers or the policy's reviewers."""
        allowed = self.settings.approvers(feedback.source) | {
            name.strip().lower() for name in self.policies.effective(task.repository).reviewers
        }
        return bool(allowed & {name.lower() for name in feedback.actor_names})

    async def _end(self, task_id: str, ended: ChangeEnded) -> Applied | Outdated:
        task = await self.store.tasks.get(task_id)
        # As the publisher's log named it: ``pull request #41``, ``merge request !3``.
        number = one_line(ended.ref.rpartition("!")[2], 20)
        label = f"merge request !{number}" if task.forge == "gitlab" else f"pull request #{number}"
        merged = ended.ending is Ending.MERGED
        try:
            result = await self._lifecycle.end_change(
                task,
                merged=merged,
                actor=f"{ended.actor} ({ended.source})",
                label=label,
                at=ended.at,
            )
        except ConflictError as exc:
            what = f"{label} {ended.ending.value} by {one_line(ended.actor, 200)}"
            await self._lifecycle.say(task_id, f"{what} ignored: {exc.message}")
            return Outdated(task_id, exc.message)
        return Applied(result)

    async def _command(self, command: Command) -> Outcome:
        task_id = await self.store.refs.task_for(command.source, command.ref)
        if not task_id:
            raise TaskNotFound(f"no task for {command.source} {one_line(command.ref, 200)}")
        task = await self.store.tasks.get(task_id)
        if command.verb is Verb.STATUS:
            return Reported(task)
        if command.verb is Verb.FIX_CI:
            return await self.ci.fix(task, command)
        where = f"{command.verb.value} from {command.source} by {one_line(command.actor, 200)}"
        approvers = self.settings.approvers(command.source)
        if not approvers & {name.lower() for name in command.actor_names}:
            await self._lifecycle.say(
                task_id, f"{where} refused: not in HOOKAGENT_{command.source.upper()}_APPROVERS"
            )
            raise NotAnApprover(f"{one_line(command.actor, 200)} may not {command.verb} tasks")
        if (outdated := _outdated(command, task)) is not None:
            await self._lifecycle.say(task_id, f"{where} ignored: {outdated}")
            return Outdated(task_id, outdated)
        try:
            return Applied(await self._apply(task_id, command))
        except ConflictError as exc:
            await self._lifecycle.refused(task_id, where, exc)
            raise

    async def _apply(self, task_id: str, command: Command) -> ActionResult:
        life, actor, text = self._lifecycle, f"{command.actor} ({command.source})", command.text
        if command.verb is Verb.APPROVE:
            return await life.approve(
                task_id, actor=actor, comment=text or None, voter=command.voter
            )
        if command.verb is Verb.REJECT:
            return await life.reject(task_id, actor=actor, reason=text or None)
        if command.verb is Verb.REVISE:
            return await life.revise(task_id, actor=actor, feedback=text)
        return await life.cancel(task_id, actor=actor, reason=text or None)

    async def _check_room(self) -> None:
        """Refuse a new task while ``HOOKAGENT_MAX_QUEUED`` tasks wait for a worker.

        A soft cap: deliveries racing at the cap may each pass the count before any of them
        is queued, so it can be passed by as many as arrive at that instant.
        """
        cap = self.settings.max_queued
        if cap and (queued := await self.store.tasks.count(TaskStatus.QUEUED)) >= cap:
            raise self._queue_full(queued)

    def _queue_full(self, queued: int) -> QueueFull:
        return QueueFull(
            f"{queued} tasks are queued (HOOKAGENT_MAX_QUEUED={self.settings.max_queued}); "
            "retry later",
            retry_after_s=QUEUE_FULL_RETRY_AFTER_S,
        )

    async def _find(self, task_id: str) -> Task | None:
        try:
            return await self.store.tasks.get(task_id)
        except TaskNotFound:
            return None


def _recurs(new: NewTask, found: Task) -> bool:
    """Whether ``new`` is the incident of a merged task coming back: a Sentry alert.

    Sentry sends no delivery id (the issue and the action stand for one), so after a merge
    the same alert is not the sender retrying but the error happening again.
    """
    return new.source == "sentry" and found.status is TaskStatus.MERGED


def _regression(new: NewTask, merged: Task | None) -> NewTask:
    """``new`` linked to the merged task it regresses, the old plan and diff stat in its prompt."""
    if merged is None:
        return new
    where = merged.pr_url or f"pull request #{merged.pr_number}"
    context = "\n".join(
        [
            f"This incident came back after hookagent's fix was merged: task "
            f"{merged.task_id} ({where}). That fix did not hold; find out why.",
            "",
            "The merged plan:",
            merged.plan or "(none recorded)",
            "",
            "The merged change (git diff --stat):",
            merged.diff_stat or "(not recorded)",
        ]
    )
    # First, so a long alert is what gets clipped, never the regression's own context.
    prompt = clip_prompt(f"{context}\n\n{new.prompt}")
    return new.model_copy(update={"regression_of": merged.task_id, "prompt": prompt})


def _outdated(command: Command, task: Task) -> str | None:
    """Why a command's comment is older than what it acts on; None when it is not.

    A decision must be written after the plan it decides became ready (the task's
    ``updated_at`` while it waits: only a transition moves it, and none happens while the
    task waits); any command after the task was created. Whole seconds, as sources write them.
    """
    if command.created_at is None:
        return None
    if command.verb in DECISIONS and task.status is TaskStatus.PENDING_APPROVAL:
        since, what = task.updated_at, "the plan it would decide was ready"
    else:
        since, what = task.created_at, f"task {task.task_id} existed"
    if int(command.created_at) < int(datetime.fromisoformat(since).timestamp()):
        return f"the comment was written before {what}"
    return None


def _secret_setting(source: str) -> str:
    """The setting that holds ``source``'s webhook secret, as refusals name it."""
    known = SOURCES.get(source)
    return known.secret_setting if known else f"HOOKAGENT_{source.upper()}_WEBHOOK_SECRET"
