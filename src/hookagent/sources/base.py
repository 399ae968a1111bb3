"""What all sources share: signature checks and defensive JSON access."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from hookagent.errors import PayloadError, SignatureError
from hookagent.json_values import PROMPT_MAX_CHARS, array, clip_prompt, field, obj, text

__all__ = [
    "PROMPT_MAX_CHARS",
    "Ignored",
    "array",
    "clip_prompt",
    "field",
    "obj",
    "pick_repo",
    "require_object",
    "text",
    "verify_hmac_sha256",
    "verify_token",
]


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
