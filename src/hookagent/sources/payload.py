"""Webhook JSON: the one place request bodies are parsed.

``json.loads`` recurses once per nesting level, so a body of a thousand ``[`` raises
RecursionError; the depth is therefore checked on the bytes first, with C-speed scans.
Lone surrogates (``"\\ud800"`` is valid JSON) cannot be encoded to UTF-8 later, so every
string of the result has them replaced with U+FFFD.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

import orjson

from hookagent.errors import JsonTooDeep, MalformedBody

MAX_DEPTH = 64

# A JSON string, escapes included (the unrolled form is linear and fast).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_SURROGATE = re.compile("[\ud800-\udfff]")
# Where a surrogate can come from: a \uD800-\uDFFF escape, or one encoded in the bytes
# (json.loads decodes with surrogatepass). Bodies without either are not walked.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def parse_json(body: bytes | str) -> Any:
    """The parsed body; :class:`MalformedBody` (400) when invalid or nested too deep."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    check_depth(raw)
    try:
        # orjson first (a few times faster); what it refuses (a lone surrogate, an integer
        # past 64 bits, NaN, UTF-16) json decides, so the result is json's either way.
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"body is not valid JSON: {str(exc)[:200]}") from None
    return _clean(payload) if _MAYBE_SURROGATE.search(raw) else payload


def check_depth(raw: bytes, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`JsonTooDeep` when brackets outside strings nest deeper than ``limit``."""
    # Fewer opening brackets in all the bytes than the limit: none can nest deeper, and
    # counting is ten times cheaper than taking the strings out (most deliveries).
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return
    if max(accumulate(map(_STEP.__getitem__, brackets))) > limit:
        raise JsonTooDeep(f"JSON nested deeper than {limit} levels")


def _clean(value: Any) -> Any:
    # Recursion is bounded: check_depth ran first.
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_SURROGATE.sub("\ufffd", k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
