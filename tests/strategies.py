"""Hypothesis strategies for the fuzz tests: arbitrary JSON, and mutations of real documents.

Pure random JSON rarely gets past a parser's first ``if``; mutating a real delivery or
event (a subtree replaced, a key deleted, a type swapped) reaches the code behind it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

Json = Any
JsonPath = tuple[str | int, ...]

# As large as an integer json.loads accepts (Python refuses more than 4300 digits).
HUGE_INTS = [2**63, -(2**63) - 1, 2**64, 10**300, 10**4299, -(10**4299)]

# Characters that break careless code: lone surrogates, NUL, escapes, line separators.
_NASTY_CHARS = ["\ud800", "\udfff", "\x00", "\x1b", "\x7f", "\u2028", "\ufeff", "\\", '"', "\n"]

# Strings a parser treats specially (mentions, repository lines, URLs) or must bound.
INTERESTING_TEXT = [
    "",
    " ",
    "\ud800",
    "@hookagent",
    "@hookagent approve",
    "@hookagent frobnicate",
    "@hookagent: revise \ud800 now",
    "Repository: acme/payments-api",
    "Repository: ../..",
    "repo: a/b.git",
    "https://github.com/acme/payments-api/issues/1",
    "github.com:/x",
    "http://[::1",
    "http://[",
    "https://example.com:99999999/rest",
    "https:///no-host",
    "jira:issue_created",
    "comment_created",
    "jira:issue_updated",
    "created",
    "labeled",
    "opened",
    "hookagent",
    "status",
    "Approved",
    "Rejected",
    "Bot",
    "text",
    "paragraph",
    "hardBreak",
    "x" * 40_000,
    "\n" * 5_000,
]

# Keys the parsers look up, so random objects reach past the first lookup.
KNOWN_KEYS = [
    "action", "data", "event", "error", "issue", "tags", "key", "value", "title", "message",
    "culprit", "level", "release", "exception", "values", "type", "stacktrace", "frames",
    "filename", "lineno", "function", "context_line", "metadata", "web_url", "url", "id",
    "issue_id", "webhookEvent", "fields", "summary", "description", "content", "text",
    "marks", "attrs", "href", "labels", "self", "comment", "body", "author", "accountId",
    "displayName", "changelog", "items", "field", "toString", "user", "repository",
    "full_name", "label", "name", "number", "login", "sender", "html_url",
    "message", "usage", "input_tokens", "output_tokens", "result", "subtype", "is_error",
    "total_cost_usd", "num_turns", "duration_ms", "session_id", "tools", "input", "todos",
    "status", "permission_denials", "tool_input", "plan", "thinking", "item", "changes",
    "path", "kind", "command", "exit_code", "aggregated_output", "completed", "thread_id",
    "role", "delta", "tool_name", "parameters", "output", "stats", "severity",
]  # fmt: skip

texts = st.text(st.characters(exclude_categories=()) | st.sampled_from(_NASTY_CHARS), max_size=40)
strings = texts | st.sampled_from(INTERESTING_TEXT)
keys = st.sampled_from(KNOWN_KEYS) | texts
scalars: st.SearchStrategy[Json] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(HUGE_INTS)
    | st.floats(allow_nan=True, allow_infinity=True)
    | strings
)


def _extend(children: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    return st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6)


json_values: st.SearchStrategy[Json] = st.recursive(scalars, _extend, max_leaves=30)


@st.composite
def deep_values(draw: st.DrawFn) -> Json:
    """A value nested up to 25 levels of lists and objects under known keys."""
    value = draw(json_values)
    for _ in range(draw(st.integers(1, 25))):
        if draw(st.booleans()):
            value = [value]
        else:
            value = {draw(st.sampled_from(KNOWN_KEYS)): value}
    return value


any_json: st.SearchStrategy[Json] = json_values | deep_values()
json_objects: st.SearchStrategy[dict[str, Json]] = st.dictionaries(keys, any_json, max_size=8)


def paths(value: Json, prefix: JsonPath = ()) -> list[JsonPath]:
    """Every path into ``value``, the root (``()``) first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def _swapped(value: Json) -> list[Json]:
    """Values of other JSON types standing in for ``value``."""
    options: list[Json] = [None, True, 0, -1, 2**64, 1.5, float("inf"), "", [], {}, [value]]
    options.append({"value": value})
    if isinstance(value, dict):
        options += [list(value.values()), list(value.keys())]
    elif isinstance(value, list):
        options.append({str(i): v for i, v in enumerate(value)})
    elif isinstance(value, str):
        options += [value * 3, value.upper(), f" {value} ", value[: len(value) // 2]]
    return options


def _set(root: Json, path: JsonPath, value: Json) -> Json:
    if not path:
        return value
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return root


def _delete(root: Json, path: JsonPath) -> Json:
    if not path:
        return root
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return root


@st.composite
def mutate_once(draw: st.DrawFn, doc: Json) -> Json:
    """``doc`` (a copy) with one subtree replaced, deleted or swapped for another type."""
    target = draw(st.sampled_from(paths(doc)))
    old: Json = doc
    for step in target:
        old = old[step]
    operation = draw(st.sampled_from(["replace", "delete", "swap", "string"]))
    if operation == "delete":
        return _delete(doc, target)
    if operation == "swap":
        return _set(doc, target, copy.deepcopy(draw(st.sampled_from(_swapped(old)))))
    if operation == "string":
        return _set(doc, target, draw(strings))
    return _set(doc, target, draw(any_json))


@st.composite
def mutations(draw: st.DrawFn, docs: list[Json]) -> Json:
    """One of ``docs`` after one to four mutations."""
    doc = copy.deepcopy(draw(st.sampled_from(docs)))
    for _ in range(draw(st.integers(1, 4))):
        doc = draw(mutate_once(doc))
    return doc


def load_json_files(files: Iterable[Path]) -> dict[str, Json]:
    """Each file's parsed JSON by file stem."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(files)}


def load_json_lines(files: Iterable[Path]) -> list[dict[str, Json]]:
    """Every JSON object line of the given JSONL files."""
    events: list[dict[str, Json]] = []
    for path in sorted(files):
        for line in path.read_text().splitlines():
            if line.strip():
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
    return events
