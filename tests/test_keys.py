"""Key shapes are a storage format: pin them."""

from __future__ import annotations

from hookagent.keys import Keys


def test_task_keys_share_one_hash_tag() -> None:
    keys = Keys("hookagent")
    tid = "task-1-abc"
    assert keys.task(tid) == "hookagent:task:{task-1-abc}"
    assert keys.history(tid) == "hookagent:task:{task-1-abc}:history"
    assert keys.logs(tid) == "hookagent:task:{task-1-abc}:logs"


def test_index_and_queue_keys() -> None:
    keys = Keys("hk")
    assert keys.tasks_by_created() == "hk:tasks:created"
    assert keys.tasks_by_status("queued") == "hk:tasks:status:queued"
    assert keys.queue("planning-queue") == "hk:queue:{planning-queue}"


def test_worker_registry_keys_share_one_hash_tag() -> None:
    keys = Keys("hk")
    assert keys.worker("box-12-a1b2c3") == "hk:worker:{workers}:box-12-a1b2c3"
    assert keys.workers_by_seen() == "hk:workers:{workers}:seen"
