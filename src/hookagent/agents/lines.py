"""Splits a byte stream read in chunks into text lines of any length."""

from __future__ import annotations


class LineSplitter:
    """Feeds on chunks, yields complete lines; decodes with replacement, never raises.

    A line longer than ``max_line_bytes`` is handed out in pieces of that size, so a
    process printing without newlines cannot grow the buffer without bound.
    """

    def __init__(self, *, max_line_bytes: int) -> None:
        self._max = max_line_bytes
        self._partial = b""

    def feed(self, chunk: bytes) -> list[str]:
        """The lines completed by ``chunk`` (without their line endings)."""
        data = self._partial + chunk if self._partial else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return self._overflow()
        self._partial = data[cut + 1 :]
        # One decode per chunk: cheap, and a multi-byte character split across chunks
        # is still whole because we only cut at newlines.
        text = data[:cut].decode("utf-8", errors="replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [line.removesuffix("\r") for line in lines]
        return lines + self._overflow()

    def close(self) -> list[str]:
        """Whatever is left once the stream ends."""
        rest, self._partial = self._partial, b""
        if not rest:
            return []
        return [rest.decode("utf-8", errors="replace").removesuffix("\r")]

    def _overflow(self) -> list[str]:
        pieces: list[str] = []
        while len(self._partial) > self._max:
            piece, self._partial = self._partial[: self._max], self._partial[self._max :]
            pieces.append(piece.decode("utf-8", errors="replace"))
        return pieces
