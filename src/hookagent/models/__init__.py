"""Task and log models: stored shapes, API schemas and the enums they use.

One noun per module; every public name is re-exported here, so ``from hookagent.models
import Task`` stays the one way to reach them. A leaf: nothing of ours is imported but
these modules.
"""

from hookagent.models.clock import seconds_between, utc_iso
from hookagent.models.log import EventKind, LogEntry, LogsPage, LogStream
from hookagent.models.rounds import ReviewRound, RoundItem, TaskRounds
from hookagent.models.schemas import (
    ActionRequest,
    ActionResult,
    StatusMetadata,
    TaskDetail,
    TaskList,
    TaskStatusResponse,
    TaskSummary,
    WebhookAccepted,
)
from hookagent.models.stats import ChangeStats, StatsResponse
from hookagent.models.task import (
    AGENTS,
    FIELDS,
    TASK_DEFAULTS,
    CheckResult,
    NewTask,
    StatusChange,
    Task,
    TaskKind,
    hash_fields,
    new_task_id,
)
from hookagent.models.text import block_text, one_line
from hookagent.models.transitions import (
    CHANGE_OPEN,
    FAIL,
    PHASE_QUEUES,
    RETRY,
    START,
    TERMINAL_STATUSES,
    TRANSITIONS,
    Action,
    Phase,
    TaskStatus,
    Transition,
)

__all__ = [
    "AGENTS",
    "CHANGE_OPEN",
    "FAIL",
    "FIELDS",
    "PHASE_QUEUES",
    "RETRY",
    "START",
    "TASK_DEFAULTS",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "Action",
    "ActionRequest",
    "ActionResult",
    "ChangeStats",
    "CheckResult",
    "EventKind",
    "LogEntry",
    "LogStream",
    "LogsPage",
    "NewTask",
    "Phase",
    "ReviewRound",
    "RoundItem",
    "StatsResponse",
    "StatusChange",
    "StatusMetadata",
    "Task",
    "TaskDetail",
    "TaskKind",
    "TaskList",
    "TaskRounds",
    "TaskStatus",
    "TaskStatusResponse",
    "TaskSummary",
    "Transition",
    "WebhookAccepted",
    "block_text",
    "hash_fields",
    "new_task_id",
    "one_line",
    "seconds_between",
    "utc_iso",
]
