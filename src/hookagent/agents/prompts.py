"""The instructions wrapped around a task's context for each phase."""

from __future__ import annotations

PLANNING = """\
You are investigating an issue in the repository {repository}, which is checked out in the
current directory. Read the code, find the cause, and write a concise plan for the fix:
which files change, how, and how to test it. Do not edit files in this phase; the plan
will be reviewed by a human before anything is changed.

Source: {source}
Title: {title}

{context}
"""


REVISION = """
A reviewer asked for changes to your previous plan.

Previous plan:
{plan}

Reviewer's feedback:
{feedback}
"""

EXECUTION = """\
You are fixing an issue in the repository {repository}, which is checked out in the current
directory on a fresh branch. Carry out the approved plan below: edit the files, run the
tests you can. Do not commit or push; hookagent commits your changes and opens the pull
request.

Source: {source}
Title: {title}

{context}

Approved plan:
{plan}
"""


def planning_prompt(
    *,
    repository: str,
    source: str,
    title: str,
    context: str,
    previous_plan: str | None = None,
    feedback: str | None = None,
) -> bytes:
    """The planning prompt (with the revision request, if any), encoded for stdin."""
    text = PLANNING.format(repository=repository, source=source, title=title, context=context)
    if feedback:
        text += REVISION.format(plan=previous_plan or "(none)", feedback=feedback)
    return text.encode("utf-8")


def execution_prompt(
    *, repository: str, source: str, title: str, context: str, plan: str, comment: str | None
) -> bytes:
    """The execution prompt: the context, the approved plan and the approver's comment."""
    text = EXECUTION.format(
        repository=repository, source=source, title=title, context=context, plan=plan
    )
    if comment:
        text += f"\nApprover's comment:\n{comment}\n"
    return text.encode("utf-8")
