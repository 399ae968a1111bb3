"""Log lines a worker holds on disk while Redis is away: one append-only file per attempt.

The log writer keeps lines in memory up to ``HOOKAGENT_LOG_HOLD_LINES`` while it cannot
append; past that it moves them here, in order, and reads them back in batches once Redis
answers again. The file is the writer's alone: an exclusive ``flock`` on it says its owner
is alive. Its first line names the task and attempt; its second line, rewritten in place
after every batch Redis stored, is the offset of the first line not stored yet, so a file
left by a worker that died mid-drain is resumed where it stopped (``orphans``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from hookagent.store.logs import Columns, Row

SUFFIX = ".spill"
_OFFSET_WIDTH = 16


def _rows(columns: Columns) -> Iterator[Row]:
    """``(ts, stream, message, kind, raw)`` of every line of ``columns``."""
    expanded = [
        [v for v, n in zip(r[::2], r[1::2], strict=True) for _ in range(n)] for r in columns.runs
    ]
    ts, streams, kinds, raws = expanded
    yield from zip(ts, streams, columns.messages, kinds, raws, strict=True)


class SpillFile:
    """The lines of one attempt held on disk, oldest first, until Redis stores them."""

    def __init__(self, path: Path, handle: IO[str], *, task_id: str, attempt: int) -> None:
        self.path = path
        self.task_id = task_id
        self.attempt = attempt
        self._file = handle
        self._done = int(self._read_offset())
        self._read_to = self._done
        self.lines = 0

    @classmethod
    def create(cls, directory: Path, *, task_id: str, attempt: int) -> SpillFile:
        """A new, locked spill file for ``task_id``'s ``attempt`` in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{task_id}-{attempt}-{secrets.token_hex(4)}{SUFFIX}"
        # Only our user: the lines are the agent's output, which may quote secrets.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        handle = os.fdopen(fd, "r+", encoding="utf-8")
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write(json.dumps({"task_id": task_id, "attempt": attempt}) + "\n")
        offset = handle.tell() + _OFFSET_WIDTH + 1
        handle.write(f"{offset:0{_OFFSET_WIDTH}d}\n")
        handle.flush()
        return cls(path, handle, task_id=task_id, attempt=attempt)

    @classmethod
    def adopt(cls, path: Path) -> SpillFile | None:
        """The file at ``path`` if its owner is gone (its lock is free), locked for us."""
        try:
            handle = path.open("r+", encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None  # a live writer owns it
        try:
            head = json.loads(handle.readline())
            spill = cls(path, handle, task_id=str(head["task_id"]), attempt=int(head["attempt"]))
        except (ValueError, KeyError, TypeError):
            handle.close()
            path.unlink(missing_ok=True)  # not ours, or cut before its header was whole
            return None
        spill.lines = sum(1 for _ in spill._lines_from(spill._done))
        return spill

    def _read_offset(self) -> str:
        self._file.seek(0)
        self._file.readline()
        return self._file.readline().strip() or "0"

    def write(self, columns: Columns) -> None:
        """Add ``columns``' lines after every line already held."""
        self._file.seek(0, os.SEEK_END)
        self._file.writelines(
            json.dumps(row, separators=(",", ":")) + "\n" for row in _rows(columns)
        )
        self._file.flush()
        self.lines += len(columns)

    def _lines_from(self, offset: int) -> Iterator[tuple[int, Any]]:
        self._file.seek(offset)
        while line := self._file.readline():
            try:
                row = json.loads(line) if line.endswith("\n") else None
            except ValueError:
                row = None
            if row is None:
                return  # a line cut by a crash mid-write: never acknowledged to anyone
            yield self._file.tell(), row

    def read(self, limit: int) -> Columns:
        """The next ``limit`` lines not stored yet (the same ones again until ``commit``)."""
        return Columns.of(self.read_rows(limit))

    def read_rows(self, limit: int) -> list[Row]:
        """``read``, as rows."""
        rows: list[Row] = []
        self._read_to = self._done
        for end, row in self._lines_from(self._done):
            rows.append(tuple(row))
            self._read_to = end
            if len(rows) >= limit:
                break
        return rows

    def commit(self, count: int) -> None:
        """The lines ``read`` last are stored: record it, so they are never written again."""
        self._done = self._read_to
        self.lines -= count
        first = len(self._file_header())
        self._file.seek(first)
        self._file.write(f"{self._done:0{_OFFSET_WIDTH}d}")
        self._file.flush()

    def _file_header(self) -> str:
        self._file.seek(0)
        return self._file.readline()

    @property
    def done(self) -> int:
        """The offset of the first line not stored yet (it names a batch uniquely)."""
        return self._done

    def remove(self) -> None:
        """Delete the file and let its lock go."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._file.close()

    def close(self) -> None:
        """Let the file and its lock go, keeping it for a later owner."""
        self._file.close()


def orphans(directory: Path) -> list[SpillFile]:
    """Spill files in ``directory`` whose writer is gone (a worker killed during an outage)."""
    if not directory.is_dir():
        return []
    found = (SpillFile.adopt(path) for path in sorted(directory.glob(f"*{SUFFIX}")))
    return [spill for spill in found if spill is not None]
