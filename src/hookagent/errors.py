"""The hookagent error hierarchy; ``api/errors.py`` maps each to an HTTP status."""

from __future__ import annotations


class HookagentError(Exception):
    """Base of every error hookagent raises on purpose; ``code`` names it in JSON answers."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class PayloadError(HookagentError):
    """A webhook body or request that parses but cannot be used."""

    code = "invalid_payload"


class SignatureError(HookagentError):
    """A webhook whose signature is missing or wrong."""

    code = "bad_signature"


class NotAnApprover(HookagentError):
    """A command from someone not listed in the source's approvers."""

    code = "not_an_approver"


class TaskNotFound(HookagentError):
    """No task with that id (or it expired)."""

    code = "task_not_found"


class ConflictError(HookagentError):
    """A status transition that the task's current status does not allow."""

    code = "conflict"


class ApprovalExpired(ConflictError):
    """A decision on a plan that waited past ``HOOKAGENT_APPROVAL_TTL``: the task was cancelled.

    The cancellation's status line already says so; nothing else logs it again.
    """


class FencedOut(HookagentError):
    """A write by a worker that no longer holds the task's lease."""

    code = "fenced_out"


class AgentError(HookagentError):
    """The agent CLI could not be started or failed."""

    code = "agent_failed"


class WorkspaceError(HookagentError):
    """The repository could not be validated, cloned or prepared."""

    code = "workspace_failed"


class PullRequestError(HookagentError):
    """The forge refused to open the pull request."""

    code = "pull_request_failed"


class EmbeddedStoreError(HookagentError):
    """The embedded Valkey could not be found, locked or started."""

    code = "embedded_store_failed"


class BodyTooLarge(HookagentError):
    """A request body over ``HOOKAGENT_MAX_BODY_BYTES``."""

    code = "body_too_large"


class UnsupportedMediaType(HookagentError):
    """A webhook that is not JSON."""

    code = "unsupported_media_type"


class MalformedBody(HookagentError):
    """A body that is not valid JSON."""

    code = "malformed_json"


class Stalled(HookagentError):
    """The agent printed nothing for longer than ``HOOKAGENT_STALL_KILL``."""

    code = "stalled"


class BudgetExceeded(HookagentError):
    """The agent's reported cost passed ``HOOKAGENT_MAX_BUDGET_USD``."""

    code = "budget_exceeded"


class RetryLater(HookagentError):
    """A refusal the sender should retry after ``retry_after_s`` seconds."""

    code = "retry_later"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(RetryLater):
    """More deliveries from one source this minute than ``HOOKAGENT_RATE_LIMIT``."""

    code = "rate_limited"


class QueueFull(RetryLater):
    """``HOOKAGENT_MAX_QUEUED`` tasks are queued already; a new one must wait."""

    code = "queue_full"


class LeaseLost(HookagentError):
    """Another worker reclaimed the job: this attempt must stop without touching the task."""

    code = "lease_lost"


class QuotaParked(HookagentError):
    """The run waits for its model's quota: its job comes back in ``after_s`` seconds."""

    code = "quota_wait"

    def __init__(self, message: str, *, after_s: float) -> None:
        super().__init__(message)
        self.after_s = after_s


class TaskCancelled(HookagentError):
    """Someone cancelled the task while a worker ran it."""

    code = "cancelled"


class ConfigError(HookagentError):
    """A setting that cannot be used, found when the process starts."""

    code = "config_error"


class Unauthenticated(HookagentError):
    """A request to a protected route without a known API token or ticket."""

    code = "unauthorized"


class Forbidden(HookagentError):
    """A request whose token's role does not allow the route."""

    code = "forbidden"


class ForeignOrigin(Forbidden):
    """A cookie-signed request that changes state without an ``Origin`` of this server."""

    code = "forbidden_origin"


class JsonTooDeep(MalformedBody):
    """JSON nested deeper than the parser is allowed to recurse."""

    code = "too_deep"


class InvalidRequest(HookagentError):
    """A request parameter out of range or of the wrong type (checked by hand, not FastAPI)."""

    code = "invalid_request"


class InvalidControl(InvalidRequest):
    """A WebSocket control message that is not ``{"offset": N}`` or ``{"filter": {...}}``."""

    code = "invalid_control"


QUOTE_MAX_CHARS = 100


def quoted(value: object, limit: int = QUOTE_MAX_CHARS) -> str:
    """``value`` as an error message may quote it: repr of at most ``limit`` characters, then …."""
    text = str(value)
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


class OutboundError(HookagentError):
    """An outside service (Slack, a forge, a webhook receiver) refused or failed a request.

    ``retryable`` (rate limits, 5xx, network) says a later try may work; ``retry_after`` is
    the wait the service asked for, in seconds.
    """

    code = "outbound_failed"

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class PolicyError(ConfigError):
    """The approval-policy file (``HOOKAGENT_POLICY_FILE``) cannot be read or is invalid."""

    code = "policy_error"


class PolicyViolation(HookagentError):
    """An execution changed files its repository's policy forbids (``paths_denied``)."""

    code = "policy_violation"
