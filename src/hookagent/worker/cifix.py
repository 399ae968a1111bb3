"""Before a round: the failing checks read, offered, or stopped (the CI side of rounds).

A failure kept by services/cifix.py waits among the round's pending items unread. Here the
worker settles it before the round may run. An offer (``fix_ci = "ask"``) becomes one comment
on the change request proposing ``@hookagent fix-ci``, once per head commit. A fix asked for
(or ``auto``) is read from the forge: each failed check's output, annotations and log tail,
capped and redacted; that report becomes the round's item. It runs no round when the
policy's ``max_ci_fixes`` are spent, or when the failure's fingerprint (the check's name and
its first failing lines, with numbers, hashes, times and paths taken out) is the one the
last CI fix was for: the loop stops, and one comment says why.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from hookagent.errors import OutboundError
from hookagent.forges import FailedCheck, Forge
from hookagent.models import LogStream, Task, one_line, utc_iso
from hookagent.policy import Policies
from hookagent.redact import Redactor
from hookagent.store import NewLine, Store

# What a report keeps of each failed check's log (its end), and of everything together.
TAIL_LINES = 200
REPORT_MAX_CHARS = 20_000
DETAILS_MAX_CHARS = 4_000
# The lines a fingerprint is taken from: the first that look like the failure.
FINGERPRINT_LINES = 5
_FAILING = re.compile(r"error|fail|assert|exception|traceback|panic", re.IGNORECASE)
_NOISE = (
    re.compile(r"\d{4}-\d\d-\d\d[T ][\d:.]+Z?"),  # timestamps
    re.compile(r"\S*/\S*"),  # paths
    re.compile(r"\b[0-9a-f]{7,}\b", re.IGNORECASE),  # hashes, ids
    re.compile(r"\d+"),
)


def tail(text: str, lines: int, chars: int) -> str:
    """The last ``lines`` lines of ``text``, at most ``chars`` characters of them."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept[-chars:]


def fingerprint(checks: list[FailedCheck]) -> str:
    """Names and first failing lines, normalised: the same failure gives the same print."""
    parts: list[str] = []
    for check in sorted(checks, key=lambda c: c.name):
        lines = f"{check.details}\n{check.log}".splitlines()
        failing = [line for line in lines if _FAILING.search(line)][:FINGERPRINT_LINES]
        for pattern in _NOISE:
            failing = [pattern.sub("", line) for line in failing]
        parts.append(check.name + "\n" + "\n".join(" ".join(f.split()) for f in failing))
    return hashlib.sha256("\n\n".join(parts).encode()).hexdigest()[:32]


def report(checks: list[FailedCheck], redactor: Redactor) -> str:
    """What the round's prompt shows: each check's output and its log's tail, capped, redacted."""
    share = max(1_000, REPORT_MAX_CHARS // max(1, len(checks)))
    blocks = []
    for check in checks:
        log = tail(check.log, TAIL_LINES, share)
        shown = f"Log (last lines):\n{log}" if log else "(no log)"
        blocks.append(f"Check: {check.name}\n{check.details[:DETAILS_MAX_CHARS]}\n{shown}")
    return redactor.redact("\n\n".join(blocks))[-REPORT_MAX_CHARS:]


class CheckFixes:
    """Settles the CI items pending for a task's next round (see the module docstring)."""

    def __init__(
        self, *, store: Store, forges: dict[str, Forge], redactor: Redactor, policies: Policies
    ) -> None:
        self._store = store
        self._forges = forges
        self._redactor = redactor
        self._policies = policies

    async def settle(self, task: Task) -> int | None:
        """Settle the unread CI items; how many items stay pending (None: there were none)."""
        pending = await self._store.reviews.pending(task.task_id)
        unread = [i for i in pending if i.get("kind") == "ci" and not i.get("ready")]
        if not unread:
            return None
        offers = [i for i in unread if i.get("offer")]
        fixes = [i for i in unread if not i.get("offer")]
        ready: list[dict[str, Any]] = []
        if offers:
            await self._offer(task, offers[-1])
        if fixes:  # one fix for all: the newest failure's report covers its checks
            if (item := await self._read(task, fixes[-1])) is not None:
                ready.append(item)
        return await self._store.reviews.rewrite(task.task_id, remove=unread, add=ready)

    async def _offer(self, task: Task, item: dict[str, Any]) -> None:
        """One comment per failed head commit offering ``@hookagent fix-ci``."""
        sha, check = str(item.get("sha") or ""), one_line(str(item.get("author") or "?"), 200)
        if await self._spent(task):
            return
        if not await self._store.reviews.once(task.task_id, "ci_offer", sha):
            return
        await self._comment(
            task,
            f"Checks failed on `{sha[:12]}` ({check}). Comment `@hookagent fix-ci` to have "
            f"hookagent read the failing checks and push a fix.",
            f"checks failed on {sha[:12]}: offered a fix (@hookagent fix-ci)",
        )

    async def _read(self, task: Task, item: dict[str, Any]) -> dict[str, Any] | None:
        """The item with the failing checks' report; None when no round should run."""
        sha = str(item.get("sha") or "")
        if sha == (await self._store.reviews.ci_state(task.task_id)).sha:
            # GitHub reports one failure as a run, a suite and a workflow: fixed once.
            await self._say(task, f"checks of {sha[:12]} were fixed already")
            return None
        if await self._spent(task):
            return None
        forge = self._forges.get(task.forge)
        if forge is None:
            await self._say(task, f"checks of {sha[:12]} not read: no {task.forge} token")
            return None
        try:
            checks = await forge.failed_checks(task.repository, sha, item.get("pipeline"))
        except OutboundError as exc:
            await self._say(task, f"checks of {sha[:12]} not read: {exc.message}")
            return None
        if not checks:
            await self._say(task, f"no failed checks found on {sha[:12]}: nothing to fix")
            return None
        mark = fingerprint(checks)
        if mark == (await self._store.reviews.ci_state(task.task_id)).fingerprint:
            if await self._store.reviews.once(task.task_id, "ci_repeat", mark):
                await self._comment(
                    task,
                    f"The checks failed on `{sha[:12]}` the same way as before hookagent's "
                    "last fix, so it stops fixing them here; over to you.",
                    "the same failure repeated after the last CI fix: stopped",
                )
            return None
        await self._store.reviews.count_ci_fix(task.task_id, mark, sha)
        names = ", ".join(c.name for c in checks)
        await self._say(task, f"CI fix of {sha[:12]}: read {len(checks)} failed checks ({names})")
        return item | {"body": report(checks, self._redactor), "ready": True}

    async def _spent(self, task: Task) -> bool:
        """True (and said once) when the policy's ``max_ci_fixes`` ran already."""
        cap = self._policies.effective(task.repository).max_ci_fixes
        if (await self._store.reviews.ci_state(task.task_id)).fixes < cap:
            return False
        if await self._store.reviews.once(task.task_id, "ci_capped", str(cap)):
            await self._comment(
                task,
                f"hookagent has tried {cap} CI fixes on this change, the most its policy "
                "allows (`max_ci_fixes`); failing checks are not acted on any more.",
                f"max_ci_fixes reached: {cap} CI fixes ran",
            )
        return True

    async def _comment(self, task: Task, body: str, line: str) -> None:
        """A comment on the change request (with hookagent's marker), then a log line."""
        forge = self._forges.get(task.forge)
        if forge is not None and task.pr_number is not None:
            text = self._redactor.redact(f"{body}\n\n<!-- hookagent:{task.task_id} -->")
            try:
                await forge.comment_on_change(task.repository, task.pr_number, text)
            except OutboundError as exc:
                await self._say(task, f"could not comment on the change request: {exc.message}")
        await self._say(task, line)

    async def _say(self, task: Task, text: str) -> None:
        line = NewLine(utc_iso(), LogStream.SYSTEM.value, f"[system] {one_line(text)}")
        await self._store.logs.append(task.task_id, [line])
