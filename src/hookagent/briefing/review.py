"""The review prompt, and the answer format it asks for, read back leniently.

The agent answers with a summary and comments on lines of the new version::

    SUMMARY:
    The change guards the division, but the empty case returns 0 silently.

    COMMENT app.py:12
    This still divides by len(xs) when xs is a generator.

Markdown around the markers is forgiven (``**COMMENT** `app.py:12```, ``### Comment app.py
line 12``, ``app.py#L12``, a range ``12-14`` counts from its first line), and text on a
marker's own line after the location starts its comment. An answer without markers is all
summary. Everything here is the agent's text: it is only split, never run or parsed as
configuration, and the worker redacts it before anything is posted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hookagent.briefing.prompts import NOTICE, fence

# The diff the prompt quotes, at most; the agent reads the rest in the checkout.
DIFF_MAX_CHARS = 200_000

REVIEW = """\
You are reviewing {label} of the repository {repository}. Its new version is checked out
in the current directory; the change is the diff below, against {base}. Review it as a
careful colleague would: bugs, missed cases, security problems, missing tests, unclear
code. Read the code around the change as you need. Do not edit files, commit or push: this
run is read-only, and hookagent posts your answer as one review.

Answer in exactly this format, with nothing after it:

SUMMARY:
<your overall review: what the change does and what you found, briefly>

COMMENT <path>:<line>
<a comment on that line of the new version of <path>>

Write one COMMENT block per remark on a specific line (none if you have none); <line> is
a line number of the new version that the diff adds or shows.

{notice}
Source: {source}
{data}

The change ({diff_name}):
{diff}
"""


@dataclass(frozen=True, slots=True)
class Remark:
    """One comment of the answer, on ``line`` of ``path`` (as the agent wrote them)."""

    path: str
    line: int
    body: str


@dataclass(frozen=True, slots=True)
class ReviewAnswer:
    """The agent's answer, split: the summary and the line comments."""

    summary: str
    remarks: tuple[Remark, ...]


def review_prompt(
    *,
    repository: str,
    source: str,
    label: str,
    base: str,
    context: str,
    title: str,
    body: str,
    diff: str,
) -> bytes:
    """The review prompt: why it runs, the request's title and body and its diff, all fenced."""
    if len(diff) > DIFF_MAX_CHARS:
        cut = len(diff) - DIFF_MAX_CHARS
        diff = f"{diff[:DIFF_MAX_CHARS]}\n[… {cut} more characters of the diff left out]"
    data = fence(f"{context}\n\nTitle: {title}\n\n{body}".strip())
    text = REVIEW.format(
        label=label,
        repository=repository,
        base=base,
        notice=NOTICE,
        source=source,
        data=data,
        diff_name=f"git diff {base}...HEAD",
        diff=fence(diff or "(no changes)"),
    )
    return text.encode("utf-8")


_DECOR = r"[\s*_#>`-]*"
_SUMMARY = re.compile(rf"^{_DECOR}summary[\s*_#`]*(?::[\s*_`]*(?P<rest>.*))?$", re.IGNORECASE)
_COMMENT = re.compile(
    rf"^{_DECOR}comment{_DECOR}:?{_DECOR}(?P<path>[^\s`*:#]+?)`?"
    r"(?::|#L|,?\s+line\s+|\s+L)(?P<line>\d+)(?:\s*(?:-|\u2013)\s*L?\d+)?"
    rf"[`*_]*(?:{_DECOR}:?\s*(?P<rest>.*))?$",
    re.IGNORECASE,
)


def parse_review(answer: str) -> ReviewAnswer:
    """Split the agent's answer into its summary and line comments (see the module's format)."""
    summary: list[str] = []
    remarks: list[tuple[str, int, list[str]]] = []
    current = summary
    for line in answer.splitlines():
        if found := _COMMENT.match(line):
            body = [found["rest"]] if found["rest"] else []
            remarks.append((found["path"].removeprefix("./"), int(found["line"]), body))
            current = body
        elif found := _SUMMARY.match(line):
            current = summary
            if found["rest"]:
                summary.append(found["rest"])
        else:
            current.append(line)
    done = tuple(
        Remark(path, number, "\n".join(body).strip())
        for path, number, body in remarks
        if "\n".join(body).strip()
    )
    return ReviewAnswer("\n".join(summary).strip(), done)
