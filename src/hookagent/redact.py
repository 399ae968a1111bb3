"""Secrets out of agent output and our own texts, before anything is stored or sent.

A :class:`Redactor` knows the configured secret values (with their JSON-escaped and
URL-encoded forms) and the shapes of well-known credentials; every match becomes
``[REDACTED:<kind>]``. The marker holds no quote and no backslash, and no match crosses a
quote, a newline or half a backslash escape, so a JSON line stays valid JSON and a batch
keeps its lines.

Clean output must cost next to nothing, and one regex alternating a dozen shapes is slow in
CPython (it tries every alternative at every position). So each shape has literal needles
(``ghp_``, ``sk-``, ``AKIA``…): a batch's lines are joined and each needle is looked for
with ``str.find``, which skips through text in C; only where a needle sits is the shape's
pattern tried, anchored there. A PEM private key printed over several lines is tracked by a
:class:`RedactingStream`, one per output stream of a run: the ``BEGIN`` line becomes a single
marker, the lines up to and including ``END`` are dropped, and a block that never ends stays
dropped.

For ``scheme://user:password@host`` the scheme, user and host are kept and only the password
is replaced: the user (``x-access-token``, ``oauth2``, a login) helps reading a git error.

A configured secret is also looked for in hex (lower and upper case) and in base64 (standard
and URL-safe), because ``base64 .env`` and ``xxd -p`` are how output carries bytes. Inside a
larger base64 blob a secret starts 0, 1 or 2 bytes into a 3-byte group, and each start gives
other characters; the characters made only of the secret's bits are the same whatever
surrounds it, so those three "cores" per alphabet are the needles (:func:`base64_cores`). A
match is extended over the next character (partly the secret's last bits) and ``=`` padding;
the character before a core is left, as it may end a JSON escape: at most 4 bits of the
secret's first byte stay visible. Not covered: base64 or hex wrapped across lines (the
needles hold no newline), other encodings (base32, gzip, reversed…). Those are a determined
agent's, and redaction is a net for what agents print, not a wall (the sandbox is the wall).

This module is a leaf: it imports nothing of hookagent.
"""

from __future__ import annotations

import base64
import json
import re
import string
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MIN_SECRET_CHARS = 8

# (kind, needles, pattern). The pattern is matched where a needle starts; its group ``v``,
# if any, is what gets replaced (the rest is kept). Each needle costs a scan of every
# batch, so they are few and shared ("gh" for five GitHub prefixes, "sk-" for two kinds).
# Shapes ask for a non-alphanumeric character before them so that words merely containing
# a prefix ("task-", "risk-") pass.
# An OpenAI key must hold a digit: real keys are random base62, hyphenated words are not.
_SHAPES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # The password runs to the last "@" before the path, as in URL parsing: "p@ss" is whole.
    ("url_credentials", ("://",), r"://[^\s/:\"'\\<>`]*:(?P<v>[^\s/\"'\\<>`]+)@"),
    ("github_token", ("gh",), r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{30,255}"),
    ("github_token", ("github_pat_",), r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{22,255}"),
    ("anthropic_key", ("sk-",), r"(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{20,}"),
    (
        "openai_key",
        ("sk-",),
        r"(?<![A-Za-z0-9_-])sk-(?!ant-)(?:proj-|svcacct-|admin-)?"
        r"(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}",
    ),
    ("aws_access_key", ("AKIA", "ASIA"), r"(?<![A-Za-z0-9])A[SK]IA[A-Z0-9]{16}(?![A-Za-z0-9])"),
    (
        "aws_secret_key",
        ("ecret", "ECRET"),
        r"(?:ecret_access_key|ECRET_ACCESS_KEY|ecretAccessKey)[\"']?[ \t]*[:=][ \t]*[\"']?"
        r"(?P<v>[A-Za-z0-9/+=]{20,})",
    ),
    ("slack_token", ("xox",), r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}"),
    ("google_api_key", ("AIza",), r"(?<![A-Za-z0-9])AIza[A-Za-z0-9_-]{35,}"),
    (
        "jwt",
        ("eyJ",),
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
    ),
)

PEM_NEEDLE = "-----BEGIN"
_PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY-----")
# Base64, PEM headers (Proc-Type: 4,ENCRYPTED) and the line breaks of a key printed inside
# a JSON string as \n escapes; no quote, so the match ends where the JSON string ends.
# Also the next element of a JSON array when it is more key text (a key printed as a list).
_PEM_BODY = re.compile(r'(?:[A-Za-z0-9+/=:,. \t-]|\\[nrt]|"\s*,\s*"(?=[A-Za-z0-9+/=]{16}))*')

Span = tuple[int, int, str]

_URL_SAFE = str.maketrans("+/", "-_")
_BASE64_CHARS = frozenset(string.ascii_letters + string.digits + "+/-_")


def marker(kind: str) -> str:
    """The text a redacted ``kind`` becomes."""
    return f"[REDACTED:{kind}]"


def encodings(value: str) -> set[str]:
    """``value`` as it may appear in output: as is, JSON-escaped and URL-encoded."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote_plus(value, safe=""),
    }
    return {form for form in forms if form}


def base64_cores(value: str) -> set[str]:
    """The base64 text (standard and URL-safe) made only of ``value``'s bits, at each alignment.

    ``value`` encoded alone is its first core followed by one partial character and padding;
    inside a larger blob it starts 0, 1 or 2 bytes into a 3-byte group of the encoding.
    """
    data = value.encode()
    cores: set[str] = set()
    for lead in range(3):
        encoded = base64.b64encode(bytes(lead) + data).decode()
        # Character i holds bits 6i..6i+5: whole ones from ceil(8*lead/6) to the last full one.
        core = encoded[-(-8 * lead // 6) : 8 * (lead + len(data)) // 6]
        cores |= {core, core.translate(_URL_SAFE)}
    return cores


def _secret_texts(secrets: Iterable[str]) -> set[str]:
    """Each secret, each line of a multi-line one, and those stripped; the short ones left out."""
    values: set[str] = set()
    for secret in secrets:
        for part in (secret, *secret.splitlines()):
            # Stripped too: a value read from a file or an env var may carry a newline.
            values |= {v for v in (part, part.strip()) if len(v) >= MIN_SECRET_CHARS}
    return values


def secret_forms(secrets: Iterable[str]) -> set[str]:
    """Every text to scrub for ``secrets``; values shorter than MIN_SECRET_CHARS are skipped.

    A multi-line value is scrubbed line by line (and whole, JSON-escaped), so no form
    holds a newline and a batch keeps its line count. Hex of each value is included (lower
    and upper case); base64 is :func:`base64_forms`, as its matches are extended.
    """
    forms: set[str] = set()
    for value in _secret_texts(secrets):
        hexed = value.encode().hex()
        forms |= encodings(value) | {hexed, hexed.upper()}
    return {form for form in forms if "\n" not in form and "\r" not in form}


def base64_forms(secrets: Iterable[str]) -> set[str]:
    """The base64 cores (:func:`base64_cores`) of every value :func:`secret_forms` scrubs."""
    return {core for value in _secret_texts(secrets) for core in base64_cores(value)}


class Redactor:
    """Replaces configured secret values and known credential shapes with markers."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        given = list(secrets)
        self._given = tuple(given)
        self._values = frozenset(secret_forms(given))
        # Matched like the values, then extended over a partial character and padding.
        self._cores = frozenset(base64_forms(given) - self._values)
        self._probes: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        for kind, needles, pattern in _SHAPES:
            for needle in needles:
                self._probes.setdefault(needle, []).append((re.compile(pattern), marker(kind)))
        self._secret = marker("secret")

    def learn(self, secrets: Iterable[str]) -> None:
        """Scrub ``secrets`` too from now on: values a run reads after start (MCP servers')."""
        given = [s for s in secrets if s not in self._given]
        if not given:
            return
        # Kept with the configured ones: a run's redactor (``including``) is built from them.
        self._given = (*self._given, *given)
        self._values = self._values | secret_forms(given)
        self._cores = self._cores | (base64_forms(given) - self._values)

    def including(self, secrets: Iterable[str]) -> Redactor:
        """This redactor, scrubbing ``secrets`` too from now on (a run's setup_env values).

        Learnt, not kept to a copy: hookagent writes lines about the agent's files (nested
        repositories, a held change's diff stat, a refused host) through the log writer's
        redactor, and the agent may have read a setup_env value that setup left behind.
        """
        self.learn(secrets)
        return self

    @property
    def secret_count(self) -> int:
        """How many distinct texts of configured secrets (forms included) are scrubbed."""
        return len(self._values) + len(self._cores)

    def redact(self, text: str) -> str:
        """``text`` (any number of lines) with every secret replaced."""
        if PEM_NEEDLE in text:
            return "\n".join(self.for_run().redact_lines(text.split("\n")))
        return _apply(text, self.spans(text))

    def redact_lines(self, lines: list[str]) -> list[str]:
        """One batch of lines, redacted (a PEM block still open at the end is dropped)."""
        return self.for_run().redact_lines(lines)

    def for_run(self) -> RedactingStream:
        """A stateful redactor for one output stream, remembering an open PEM block."""
        return RedactingStream(self)

    def spans(self, text: str) -> list[Span]:
        """Where secrets sit in ``text``: (start, end, replacement), in no particular order."""
        found: list[Span] = []
        find = text.find
        for value in self._values:
            at = find(value)
            while at >= 0:
                found.append((at, at + len(value), self._secret))
                at = find(value, at + 1)
        for core in self._cores:
            at = find(core)
            while at >= 0:
                found.append((at, _past_padding(text, at + len(core)), self._secret))
                at = find(core, at + 1)
        for needle, probes in self._probes.items():
            at = find(needle)
            while at >= 0:
                for pattern, replacement in probes:
                    match = pattern.match(text, at)
                    if match is not None:
                        # A group ``v`` is the secret part; the rest (a key name, a user) stays.
                        span = match.span("v") if "v" in pattern.groupindex else match.span()
                        found.append((*span, replacement))
                at = find(needle, at + 1)
        return found

    def redact_line(self, line: str) -> tuple[str, bool]:
        """One line, redacted, and whether it opens a PEM block that goes on below."""
        opened = False
        if PEM_NEEDLE in line:
            line, opened = _redact_pem(line)
        return _apply(line, self.spans(line)), opened

    def findings(self, text: str) -> list[Span]:
        """Where secrets sit in ``text``: (start, end, kind), sorted; a PEM key's BEGIN too."""
        found = [
            (start, end, shown.removeprefix("[REDACTED:").removesuffix("]"))
            for start, end, shown in self.spans(text)
        ]
        found += [(m.start(), m.end(), "private_key") for m in _PEM_BEGIN.finditer(text)]
        return sorted(found)


class RedactingStream:
    """Redacts one stream's lines chunk by chunk; a PEM block may span chunks."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self.in_block = False

    def redact_lines(self, lines: list[str]) -> list[str]:
        """The chunk redacted: the same lines, except those inside a PEM block are dropped."""
        joined = "\n".join(lines)
        if self.in_block or PEM_NEEDLE in joined:
            return self._line_by_line(lines)
        spans = self._redactor.spans(joined)
        if not spans:
            return lines
        out = _apply(joined, spans).split("\n")
        if len(out) != len(lines):
            # A line held a newline of its own, so the joined text split differently.
            return self._line_by_line(lines)
        return out

    def _line_by_line(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        for line in lines:
            if self.in_block:
                self._close_block(line, out)
                continue
            text, self.in_block = self._redactor.redact_line(line)
            out.append(text)
        return out

    def _close_block(self, line: str, out: list[str]) -> None:
        """Drop ``line`` as part of the open block, keeping what follows an END marker."""
        end = _PEM_END.search(line)
        if end is None:
            return
        self.in_block = False
        rest = line[end.end() :]
        if rest.strip():
            text, self.in_block = self._redactor.redact_line(rest)
            out.append(text)


def _apply(text: str, spans: list[Span]) -> str:
    """``text`` with each span replaced; overlapping spans become one, named by the first."""
    if not spans:
        return text
    spans.sort(key=lambda span: (span[0], -span[1]))
    parts: list[str] = []
    kept = 0  # text[:kept] is done
    start, end, replacement = spans[0]
    for next_start, next_end, next_replacement in spans[1:]:
        if next_start < end:
            end = max(end, next_end)
            continue
        parts += (text[kept:start], replacement)
        kept = end
        start, end, replacement = next_start, next_end, next_replacement
    parts += (text[kept:start], replacement, text[end:])
    return "".join(parts)


def _past_padding(text: str, end: int) -> int:
    """Where a base64 core ending at ``end`` ends with its partial character and ``=`` padding."""
    if end < len(text) and text[end] in _BASE64_CHARS:
        end += 1
    for _ in range(2):
        if end < len(text) and text[end] == "=":
            end += 1
    return end


def _redact_pem(line: str) -> tuple[str, bool]:
    """Replace the PEM private keys in ``line``; True when the last one goes on below."""
    parts: list[str] = []
    position = 0
    opened = False
    while (begin := _PEM_BEGIN.search(line, position)) is not None:
        parts += (line[position : begin.start()], marker("private_key"))
        # An END later on the line closes the key whatever lies between (a JSON array of
        # lines, say): both ends sit in strings, so the line stays valid JSON.
        end = _PEM_END.search(line, begin.end())
        body = _PEM_BODY.match(line, begin.end())
        stop = body.end() if body is not None else begin.end()
        position = end.end() if end is not None else stop
        # Only a key printed as lines (nothing after BEGIN) continues below; one inside a
        # JSON string carries its line breaks as \n escapes and ends where the string does.
        opened = end is None and not line[begin.end() :].strip()
    parts.append(line[position:])
    return "".join(parts), opened
