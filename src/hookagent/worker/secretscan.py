"""No secret leaves in a commit: the added lines of a change, scanned before the push.

The change is the diff hookagent's own git computes (``git diff --cached -U0 --text``: no
context, binary files as text, no driver or textconv), never anything of the agent's
``.git``. Every added line and every added file's name goes through the redactor's
detectors (configured secret values and credential shapes). A finding names the file (its
name redacted) and the line (0: the file's name itself) and the kind, never the value.
Paths matching the policy's ``allow_secrets_in`` globs are not scanned.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from hookagent.redact import Redactor

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


@dataclass(frozen=True, slots=True)
class Finding:
    """A secret in the change: where (a path, redacted, and a line) and of which kind."""

    path: str
    line: int
    kind: str

    def describe(self) -> str:
        """The refusal as the task's log says it."""
        return f"refused to push: {self.path}:{self.line} holds a {self.kind}"


def scan_diff(
    diff: str, redactor: Redactor, exempt: Callable[[str], bool] = lambda _: False
) -> list[Finding]:
    """Every secret in the added lines and added file names of ``diff``, in diff order."""
    found: list[Finding] = []
    path: str | None = None
    created: str | None = None  # the file a ``diff --git`` header names
    named = False  # its name scanned already (``new file mode``)
    number = 0
    header = False  # between ``diff --git`` and the first hunk: an added line may be "++ x"
    for line in diff.split("\n"):
        if line.startswith("diff --git "):
            header, path, named = True, None, False
            created = _header_path(line[len("diff --git ") :])
        elif header and line.startswith("new file mode ") and created is not None:
            # An empty new file has no ``+++`` header: its name is only in this one.
            if not exempt(created):
                found += _findings(redactor, created, created, 0)
            named = True
        elif header and line.startswith("+++ "):
            path = _new_path(line[4:])
            if path is not None and exempt(path):
                path = None
            elif path is not None and not named:
                found += _findings(redactor, path, path, 0)
        elif line.startswith("@@"):
            header = False
            hunk = _HUNK.match(line)
            number = int(hunk.group(1)) if hunk else 0
        elif not header and line.startswith("+") and path is not None:
            found += _findings(redactor, path, line[1:], number)
            number += 1
    return found


def _findings(redactor: Redactor, path: str, text: str, number: int) -> list[Finding]:
    kinds = dict.fromkeys(kind for _, _, kind in redactor.findings(text))
    return [Finding(redactor.redact(path), number, kind) for kind in kinds]


def _header_path(names: str) -> str | None:
    """The new path of a ``diff --git`` header's ``a/<path> b/<path>`` (None if unsure).

    Without rename detection both names are the same path, quoted alike, so the second is
    the second half, after the space in the middle.
    """
    half = (len(names) - 1) // 2
    if len(names) % 2 == 0 or names[half] != " ":
        return None
    old, new = names[:half], names[half + 1 :]
    path = _new_path(new)
    before = _unquote(old) if old.startswith('"') else old
    return path if path is not None and before == f"a/{path}" else None


def _new_path(header: str) -> str | None:
    """The path of a ``+++`` header (``b/<path>``, C-quoted when odd), None for a deletion."""
    if header.startswith('"'):
        header = _unquote(header)
    header = header.removesuffix("\t")
    return header[2:] if header.startswith("b/") else None


def _unquote(quoted: str) -> str:
    """git's C-style quoting undone: ``"b/a\\tb\\303\\251"`` -> ``b/a<TAB>bé``."""
    body = quoted[1 : quoted.rindex('"')] if quoted.count('"') >= 2 else quoted[1:]
    out = bytearray()
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567":
                out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, ord(nxt) & 0xFF))
            i += 2
            continue
        out += char.encode()
        i += 1
    return out.decode("utf-8", errors="replace")
