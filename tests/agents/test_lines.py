"""The line splitter: any length, any bytes, any chunking."""

from __future__ import annotations

from hookagent.agents.lines import LineSplitter


def test_lines_split_across_chunks() -> None:
    splitter = LineSplitter(max_line_bytes=1000)
    assert splitter.feed(b"hel") == []
    assert splitter.feed(b"lo\nwor") == ["hello"]
    assert splitter.feed(b"ld\r\n\n") == ["world", ""]
    assert splitter.close() == []


def test_multibyte_character_split_between_chunks_stays_whole() -> None:
    data = "café ✓\n".encode()
    splitter = LineSplitter(max_line_bytes=1000)
    out = [line for i in range(len(data)) for line in splitter.feed(data[i : i + 1])]
    assert out == ["café ✓"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    splitter = LineSplitter(max_line_bytes=1000)
    assert splitter.feed(b"ok \xff\xfe end\n") == ["ok \ufffd\ufffd end"]


def test_line_longer_than_cap_comes_out_in_pieces() -> None:
    splitter = LineSplitter(max_line_bytes=4)
    assert splitter.feed(b"abcdefghij") == ["abcd", "efgh"]
    assert splitter.feed(b"k\n") == ["ijk"]


def test_unterminated_last_line_is_flushed_on_close() -> None:
    splitter = LineSplitter(max_line_bytes=100)
    assert splitter.feed(b"a\nb") == ["a"]
    assert splitter.close() == ["b"]
