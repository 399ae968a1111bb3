"""Vetting: the agent's change, checked before anything of it is committed or pushed.

An execution (phases.py) and a review round (rounds.py) push what the agent changed, and
both refuse the same things. The checks live here once, because two copies of a security
check drift apart. :func:`vet_change` stages the workspace in hookagent's private index
(nested git repositories left out, and said so), refuses a denied path (``paths_denied``, and
CI definitions: ``Policy.refusal``) and scans the added lines and names for secrets with
the run's redactor (secretscan.py); either fails the task with a PolicyViolation.

What only an execution asks is beside it, and only phases.py calls it: whether a change
that a policy rule approved still fits an ``auto_approve`` rule once its files are counted
(:func:`recheck_auto_approval`), and the diff stat a task records (:func:`describe_change`).
"""

from __future__ import annotations

from hookagent.errors import PolicyViolation
from hookagent.models import LogStream, Task
from hookagent.policy import Facts, Policy
from hookagent.redact import Redactor
from hookagent.store.writer import LogWriter
from hookagent.worker.checkout import Checkout
from hookagent.worker.secretscan import scan_diff

# A regression's prompt quotes the last lines of the merged change's diff stat (the summary last).
DIFF_STAT_LINES = 40


async def vet_change(
    checkout: Checkout,
    base: str,
    *,
    policy: Policy,
    redactor: Redactor,
    repository: str,
    writer: LogWriter,
) -> list[str]:
    """Stage the change since ``base``; refuse a denied path or a secret; the changed paths."""
    nested = await checkout.stage()
    if nested:
        await writer.system(f"left out nested git repositories: {', '.join(nested)}")
    changed = await checkout.changed_files(base)
    refused = policy.refusal(changed, repository)
    if refused:
        raise PolicyViolation(refused)
    # The run's redactor: it knows the values of ``setup_env`` too (even in a round, whose
    # setup never had them), which hookagent's own does not.
    found = scan_diff(await checkout.diff(base), redactor, policy.secrets_allowed)
    if found:
        # Paths are redacted already; a finding never holds the value it found.
        writer.add_lines(LogStream.SYSTEM, [f.describe() for f in found])
        await writer.flush()
        raise PolicyViolation(found[0].describe())
    return changed


async def recheck_auto_approval(
    checkout: Checkout, base: str, *, task: Task, policy: Policy, files: int
) -> str | None:
    """A held change's diff stat: approved by a policy rule, allowed by none at ``files`` files.

    None when a person approved the execution, or a rule still allows the change.
    """
    if task.approver != "policy":
        return None  # a person approved this execution, whatever its size
    facts = Facts(source=task.source, labels=tuple(task.labels), level=task.level, files=files)
    if policy.auto_rule(facts) is not None:
        return None
    return await checkout.diff(base, stat=True)


async def describe_change(checkout: Checkout, base: str, redactor: Redactor) -> str:
    """The staged change's diff stat, redacted and capped: what a regression is told."""
    stat = await checkout.diff(base, stat=True)
    lines = redactor.redact_lines(stat.rstrip().splitlines()[-DIFF_STAT_LINES:])
    return "\n".join(lines)
