"""What all sources share: signature checks and defensive JSON access."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Any

from hookagent.errors import PayloadError, SignatureError
from hookagent.json_values import PROMPT_MAX_CHARS, array, clip_prompt, field, obj, text

__all__ = [
    "PROMPT_MAX_CHARS",
    "Ignored",
    "array",
    "clip_prompt",
    "event_key",
    "field",
    "moment",
    "obj",
    "pick_repo",
    "require_object",
    "text",
    "user_id",
    "verify_hmac_sha256",
    "verify_token",
]

# A source's own comment or user id: bounded and plain, since it reaches Redis keys.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# No source writes a time of its comments this far out; past it the value is not a time.
_LATEST_S = 10**11


class Ignored(Exception):
    """A valid delivery that does not start a task (another action, another resource)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_hmac_sha256(body: bytes, secret: str, header: str | None, *, prefix: str = "") -> None:
    """Check a hex HMAC-SHA256 of the raw body, in constant time; raise :class:`SignatureError`."""
    if not header:
        raise SignatureError("missing signature header")
    given = header.strip()
    if prefix:
        if not given.startswith(prefix):
            raise SignatureError(f"signature must start with {prefix!r}")
        given = given[len(prefix) :]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # Bytes: compare_digest refuses non-ASCII str (a 500), and a header may hold anything.
    if not hmac.compare_digest(expected.encode(), given.lower().encode()):
        raise SignatureError("signature does not match the body")


def verify_token(secret: str, given: str | None) -> None:
    """Compare a shared-token header (GitLab's ``X-Gitlab-Token``) in constant time."""
    if not given:
        raise SignatureError("missing token header")
    # Bytes: compare_digest refuses non-ASCII str, and a header may hold anything.
    if not hmac.compare_digest(secret.encode(), given.encode()):
        raise SignatureError("token does not match")


def require_object(payload: Any) -> dict[str, Any]:
    """The payload as a JSON object, or a 422."""
    if not isinstance(payload, dict):
        raise PayloadError("webhook body must be a JSON object")
    return payload


def pick_repo(found: str | None, default: str | None, where: str) -> str:
    """The repository named by the payload, else the default, else a 422 saying so."""
    repo = found or default
    if not repo:
        raise PayloadError(f"no repository: add {where}, or set HOOKAGENT_DEFAULT_REPO")
    return repo


def event_key(kind: str, value: Any) -> str | None:
    """``kind:<id>`` for a source's own comment or action id; None when it has none usable."""
    ident = text(value)
    return f"{kind}:{ident}" if _PLAIN_ID.fullmatch(ident) else None


def user_id(value: Any) -> str | None:
    """A source's numeric user id (GitHub, GitLab) as text; None when absent or not a number."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return None


def moment(value: Any, what: str) -> float | None:
    """Epoch seconds of a time a source wrote (ISO 8601, ``… UTC``, or ms); None when absent.

    A value that is there but is no time is a 422: the check it feeds must not be skipped.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Jira's ``timestamp``, in ms; compared before dividing (JSON integers may be huge).
        if not 0 <= value < _LATEST_S * 1000:
            raise PayloadError(f"{what} is not a time")
        return value / 1000
    raw = text(value).strip()
    if raw.endswith(" UTC"):  # GitLab's older form: ``2015-05-17 18:08:09 UTC``
        raw = raw[: -len(" UTC")] + "+00:00"
    try:
        stamp = datetime.fromisoformat(raw)
    except ValueError:
        raise PayloadError(f"{what} is not a time") from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
