"""What all sources share: signature checks and defensive JSON access."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from hookagent.errors import PayloadError, SignatureError

PROMPT_MAX_CHARS = 32 * 1024


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


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def array(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def text(value: Any) -> str:
    """``value`` as stripped text when it is a string or number, else empty."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


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


def clip_prompt(prompt: str) -> str:
    """Keep prompts bounded whatever the payload carries."""
    if len(prompt) <= PROMPT_MAX_CHARS:
        return prompt
    return prompt[:PROMPT_MAX_CHARS] + "\n… [context truncated]"


def field(name: str, value: str) -> str:
    """``Name: value`` for a prompt line, or empty when there is no value."""
    return f"{name}: {value}" if value else ""
