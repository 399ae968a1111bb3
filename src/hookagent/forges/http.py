"""What outbound HTTP clients share: URL path segments, how long a service asks us to wait."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from hookagent.errors import OutboundError, quoted


def segment(value: str | int) -> str:
    """``value`` as one URL path segment: all but unreserved characters percent-encoded.

    Ids come from webhook payloads and stored tasks; a ``/`` or ``?`` in one would steer the
    request elsewhere (``X-1/../../issue/SEC-7``). ``.`` and ``..`` are refused: clients
    resolve them as steps up the path, encoded or not.
    """
    text = str(value)
    if text in ("", ".", ".."):
        raise OutboundError(f"{quoted(text)} cannot name a resource in a URL", retryable=False)
    return quote(text, safe="")


def github_repo_path(repo: str) -> str:
    """``/repos/{owner}/{name}`` for ``owner/name``, each part one quoted segment."""
    owner, slash, name = repo.partition("/")
    if not slash or "/" in name:
        raise OutboundError(f"{quoted(repo)} is not a GitHub owner/name", retryable=False)
    return f"/repos/{segment(owner)}/{segment(name)}"


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().replace(".", "", 1).isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
