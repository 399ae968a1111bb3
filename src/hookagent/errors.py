"""The hookagent error hierarchy; the API maps each to an HTTP status."""

from __future__ import annotations


class HookagentError(Exception):
    """Base of every error hookagent raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class PayloadError(HookagentError):
    """A webhook body that parses but cannot become a task."""

    status_code = 422
    code = "invalid_payload"


class SignatureError(HookagentError):
    """A webhook whose signature is missing or wrong."""

    status_code = 401
    code = "bad_signature"


class TaskNotFound(HookagentError):
    """No task with that id (or it expired)."""

    status_code = 404
    code = "task_not_found"


class ConflictError(HookagentError):
    """A status transition that the task's current status does not allow."""

    status_code = 409
    code = "conflict"


class FencedOut(HookagentError):
    """A write by a worker that no longer holds the task's lease."""

    status_code = 409
    code = "fenced_out"


class AgentError(HookagentError):
    """The agent CLI could not be started or failed."""

    code = "agent_failed"


class WorkspaceError(HookagentError):
    """The repository could not be validated, cloned or prepared."""

    status_code = 422
    code = "workspace_failed"


class EmbeddedStoreError(HookagentError):
    """The embedded Valkey could not be found, locked or started."""

    code = "embedded_store_failed"


class BodyTooLarge(HookagentError):
    """A request body over ``HOOKAGENT_MAX_BODY_BYTES``."""

    status_code = 413
    code = "body_too_large"


class UnsupportedMediaType(HookagentError):
    """A webhook that is not JSON."""

    status_code = 415
    code = "unsupported_media_type"


class MalformedBody(HookagentError):
    """A body that is not valid JSON."""

    status_code = 400
    code = "malformed_json"


class JsonTooDeep(MalformedBody):
    """JSON nested deeper than the parser is allowed to recurse."""

    code = "too_deep"


class InvalidRequest(HookagentError):
    """A request parameter out of range or of the wrong type (checked by hand, not FastAPI)."""

    status_code = 422
    code = "invalid_request"


class InvalidControl(InvalidRequest):
    """A WebSocket control message that is not ``{"offset": N}`` or ``{"filter": {...}}``."""

    code = "invalid_control"


QUOTE_MAX_CHARS = 100


def quoted(value: object, limit: int = QUOTE_MAX_CHARS) -> str:
    """``value`` as an error message may quote it: repr of at most ``limit`` characters, then …."""
    text = str(value)
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"
