"""Request lines without credentials: query values named like secrets are cut from the log.

uvicorn writes the request target with its query string as the client sent it (its access
log, and its WebSocket lines on the error log), so ``?token=…`` or ``?ticket=…`` would
reach stdout and every log collector after it. A parameter whose name (decoded, any case)
contains one of :data:`SECRET_NAME_PARTS` keeps its name and loses its value:
``?access_token=abc&page=2`` is logged ``?access_token=[REDACTED]&page=2``. Containment
rather than equality catches ``api_key``, ``client_secret``, ``X-Amz-Signature``; a
harmless parameter named alike (``keyword``) loses its value in the log, nothing else.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

SECRET_NAME_PARTS = ("token", "key", "secret", "passw", "sig", "ticket", "credential")
CUT = "[REDACTED]"


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
