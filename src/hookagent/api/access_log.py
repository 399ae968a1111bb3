"""The access log: one line per request, as uvicorn wrote it, without credentials in it.

The front layer writes the access lines itself (:class:`AccessLog`), with uvicorn's text:
``INFO:     [pid] host:port - "GET /path?query HTTP/1.1" 200 OK``. uvicorn's access logger
cost a ``LogRecord``, a filter, a formatter and a handler per request, ~20 µs of a 70 µs
``/healthz``; a preformatted string appended to a list costs ~2, and the lines of a tenth
of a second go out in one write.

uvicorn writes the request target with its query string as the client sent it (its access
log, and its WebSocket lines on the error log), so ``?token=…`` or ``?ticket=…`` would
reach stdout and every log collector after it. A parameter whose name (decoded, any case)
contains one of :data:`SECRET_NAME_PARTS` keeps its name and loses its value:
``?access_token=abc&page=2`` is logged ``?access_token=[REDACTED]&page=2``. Containment
rather than equality catches ``api_key``, ``client_secret``, ``X-Amz-Signature``; a
harmless parameter named alike (``keyword``) loses its value in the log, nothing else.
"""

from __future__ import annotations

import asyncio
import http
import logging
import os
from collections.abc import MutableMapping
from typing import Any, TextIO
from urllib.parse import unquote_plus

SECRET_NAME_PARTS = ("token", "key", "secret", "passw", "sig", "ticket", "credential")
CUT = "[REDACTED]"
# How late an access line may reach its stream: the lines of that span go out in one write.
ACCESS_LOG_DELAY_S = 0.1
# uvicorn's status text: the code and its phrase (``200 OK``), the code alone if unknown.
_STATUS = {status.value: f"{status.value} {status.phrase}" for status in http.HTTPStatus}


class AccessLog:
    """Access lines in uvicorn's text, secret query values cut, written in batches."""

    def __init__(self, stream: TextIO, *, delay: float = ACCESS_LOG_DELAY_S) -> None:
        self._stream = stream
        self._delay = delay
        # Which process served the request: `up` and `server` may run several on one port.
        self._prefix = f"INFO:     [{os.getpid()}] "
        self._pending: list[str] = []

    def __repr__(self) -> str:
        return f"AccessLog({len(self._pending)} pending)"

    def request(self, scope: MutableMapping[str, Any], status: int) -> None:
        """Log the request of ``scope`` answered ``status``; written within the delay."""
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if query := scope["query_string"]:
            target = cut_query(f"{target}?{query.decode('latin-1')}".replace('"', "%22"))
        else:
            target = target.replace('"', "%22")
        client = scope.get("client")
        address = f"{client[0]}:{client[1]}" if client else ""
        line = (
            f'{self._prefix}{address} - "{scope["method"]} {target} '
            f'HTTP/{scope["http_version"]}" {_STATUS.get(status) or f"{status} "}\n'
        )
        if not self._pending:
            try:
                asyncio.get_running_loop().call_later(self._delay, self.flush)
            except RuntimeError:  # no loop (a test's thread): written now
                self._pending.append(line)
                self.flush()
                return
        self._pending.append(line)

    def flush(self) -> None:
        """Write what is pending (the server calls it once more as it stops)."""
        lines, self._pending = self._pending, []
        if lines:
            self._stream.write("".join(lines))
            self._stream.flush()


def cut_query(target: str) -> str:
    """``target`` (a path with a query) with the values of secret-named parameters cut."""
    path, mark, query = target.partition("?")
    if not mark:
        return target
    pieces = []
    for piece in query.split("&"):
        name, equals, value = piece.partition("=")
        if equals and value and is_secret_name(name):
            piece = f"{name}={CUT}"
        pieces.append(piece)
    return f"{path}?{'&'.join(pieces)}"


def is_secret_name(name: str) -> bool:
    """Whether a query parameter named ``name`` (as sent, still URL-encoded) holds a secret."""
    plain = unquote_plus(name).lower()
    return any(part in plain for part in SECRET_NAME_PARTS)


class QuerySecretFilter(logging.Filter):
    """Cuts secret query values from a record's path arguments (uvicorn's request lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's arguments that are paths with a query; keep every record."""
        args = record.args
        if isinstance(args, tuple) and any(_is_target(arg) for arg in args):
            record.args = tuple(
                cut_query(arg) if isinstance(arg, str) and _is_target(arg) else arg for arg in args
            )
        return True


def _is_target(arg: object) -> bool:
    """Whether ``arg`` is a request target with a query (``/path?…``)."""
    return isinstance(arg, str) and arg.startswith("/") and "?" in arg
