"""The models' helpers that the intake's fast path relies on."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from hookagent.models import TASK_DEFAULTS, NewTask, Task, TaskStatus, hash_fields, utc_iso


@given(st.floats(min_value=0, max_value=2**33, allow_nan=False))
@example(1.9999995)  # rounds up to the next second at the microsecond
@example(1700000000.0004999)
@example(0.0)
def test_utc_iso_is_datetimes_text(epoch: float) -> None:
    """The same text datetime.fromtimestamp gives, milliseconds included, at every instant."""
    moment = datetime.fromtimestamp(epoch, UTC)
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert utc_iso(epoch) == expected


def test_a_task_from_complete_values_is_the_validated_one() -> None:
    """TASK_DEFAULTS plus a new task's values build the task validation builds, and its hash."""
    new = NewTask(source="sentry", repository="o/r", title="t", prompt="p", labels=["bug"])
    given_values = {"task_id": "task-1", "status": TaskStatus.QUEUED, "created_at": "c"}
    values = {**TASK_DEFAULTS, **new.model_dump(), **given_values, "updated_at": "c"}
    built = Task.model_construct(**values, checks={})
    validated = Task.model_validate({**new.model_dump(), **given_values, "updated_at": "c"})
    assert built == validated
    assert hash_fields({**values, "checks": {}}) == validated.to_hash()
    assert validated.to_hash()["labels"] == '["bug"]'
