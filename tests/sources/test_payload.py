"""Webhook JSON parsing: a depth limit checked before parsing, lone surrogates replaced."""

from __future__ import annotations

import time

import pytest

from hookagent.errors import JsonTooDeep, MalformedBody
from hookagent.sources.payload import MAX_DEPTH, check_depth, parse_json


def test_depth_is_counted_outside_strings_only() -> None:
    inside = b'{"a": "' + b"[{" * 500 + b'", "b": "\\"[["}'
    assert parse_json(inside)["b"] == '"[['
    limit = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(limit) is not None
    with pytest.raises(JsonTooDeep):
        parse_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    with pytest.raises(JsonTooDeep):
        parse_json(b'{"a":' * 100 + b"1" + b"}" * 100)


def test_malformed_json_is_still_malformed() -> None:
    for bad in (b'{"id": ', b"", b"\xff\xfe", b'"unterminated [[['):
        with pytest.raises(MalformedBody):
            parse_json(bad)


def test_lone_surrogates_are_replaced_in_keys_and_values() -> None:
    payload = parse_json(b'{"\\ud800k": ["bad \\udfff x", {"ok": "\\ud83d\\ude00"}]}')
    assert payload == {"\ufffdk": ["bad \ufffd x", {"ok": "\U0001f600"}]}
    assert parse_json('["raw \udc80"]'.encode("utf-8", "surrogatepass")) == ["raw \ufffd"]


def test_the_depth_check_is_cheap_on_a_mebibyte() -> None:
    bodies = [
        b'{"s": "' + b"x[" * (512 * 1024) + b'"}',
        b"[" + b"[1]," * (256 * 1024) + b"1]",
    ]
    for body in bodies:
        started = time.perf_counter()
        check_depth(body)
        assert time.perf_counter() - started < 0.3
