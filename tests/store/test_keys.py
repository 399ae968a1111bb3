"""Key shapes are a storage format: pin them, every one, with its real name."""

from __future__ import annotations

import inspect

from hookagent.store.keys import NOTIFIER_GROUP, WORKER_GROUP, Keys

TID = "task-1-abc"

# Every public builder of Keys("hk"), called with sample arguments, and the exact key it
# must return. A builder added to Keys without a line here fails the completeness test.
PINNED: dict[str, tuple[str, str]] = {
    "task": (Keys("hk").task(TID), "hk:task:{task-1-abc}"),
    "history": (Keys("hk").history(TID), "hk:task:{task-1-abc}:history"),
    "logs": (Keys("hk").logs(TID), "hk:task:{task-1-abc}:logs"),
    "tasks_by_created": (Keys("hk").tasks_by_created(), "hk:tasks:created"),
    "tasks_by_status": (Keys("hk").tasks_by_status("queued"), "hk:tasks:status:queued"),
    "queue": (Keys("hk").queue("planning-queue"), "hk:queue:{planning-queue}"),
    "cancel_channel": (Keys("hk").cancel_channel(TID), "hk:task:{task-1-abc}:cancel"),
    "progress": (Keys("hk").progress(TID), "hk:task:{task-1-abc}:progress"),
    "plans": (Keys("hk").plans(TID), "hk:task:{task-1-abc}:plans"),
    "approvals": (Keys("hk").approvals(TID), "hk:task:{task-1-abc}:approvals"),
    "feedbacks": (Keys("hk").feedbacks(TID), "hk:task:{task-1-abc}:feedbacks"),
    # Review rounds on the change request, on the task's slot: one script moves them.
    "review_pending": (Keys("hk").review_pending(TID), "hk:task:{task-1-abc}:review:pending"),
    "review_current": (Keys("hk").review_current(TID), "hk:task:{task-1-abc}:review:current"),
    "review_rounds": (Keys("hk").review_rounds(TID), "hk:task:{task-1-abc}:review:rounds"),
    "review_seen": (Keys("hk").review_seen(TID), "hk:task:{task-1-abc}:review:seen"),
    # One hash tag for every term's postings: one script intersects them.
    "postings": (Keys("hk").postings("keyerror"), "hk:search:{terms}:postings:keyerror"),
    # A task's pending writes to other slots, on its own slot; applied ids beside each stream.
    "effects": (Keys("hk").effects(TID), "hk:task:{task-1-abc}:effects"),
    "unsettled": (Keys("hk").unsettled(), "hk:effects:unsettled"),
    "applied": (Keys("hk").applied("hk:outbox"), "hk:applied:{hk:outbox}"),
    "delivery": (Keys("hk").delivery("github", "d-42"), "hk:delivery:github:d-42"),
    "ref": (Keys("hk").ref("jira", "PAY-231"), "hk:ref:jira:PAY-231"),
    # The source's own comment id, apart from the delivery header a replay can change.
    "command": (Keys("hk").command("github", "comment:7781"), "hk:command:github:comment:7781"),
    "rate": (Keys("hk").rate("github", 29_000_000), "hk:rate:github:29000000"),
    # Per client address, apart from the per-source budget of verified deliveries.
    "unverified_rate": (
        Keys("hk").unverified_rate("2001:db8::/64", 29_000_000),
        "hk:rate:unverified:2001:db8::/64:29000000",
    ),
    # One hash tag per repository: the slot script touches both keys on one cluster slot.
    "repo_runs": (Keys("hk").repo_runs("Acme/API"), "hk:runs:{acme/api}"),
    "repo_waiting": (Keys("hk").repo_waiting("acme/api"), "hk:runs:{acme/api}:waiting"),
    "ticket": (Keys("hk").ticket("ab12"), "hk:ticket:ab12"),
    "session": (Keys("hk").session("cd34"), "hk:session:cd34"),
    "events": (Keys("hk").events(), "hk:events"),
    # One hash tag for the registry: a heartbeat writes a record and the index together.
    "worker": (Keys("hk").worker("box-12-a1b2c3"), "hk:worker:{workers}:box-12-a1b2c3"),
    "agent_quota": (Keys("hk").agent_quota("claude"), "hk:quota:{agents}:claude"),
    "parked": (Keys("hk").parked("t1"), "hk:task:{t1}:parked"),
    "workers_by_seen": (Keys("hk").workers_by_seen(), "hk:workers:{workers}:seen"),
    "outbox": (Keys("hk").outbox(), "hk:outbox"),
    "metrics": (Keys("hk").metrics(), "hk:metrics"),
    "phase_durations": (Keys("hk").phase_durations("plan"), "hk:metrics:phase:plan"),
    "time_to_merge": (Keys("hk").time_to_merge(), "hk:metrics:time_to_merge"),
    "notify_state": (
        Keys("hk").notify_state(TID, "slack"),
        "hk:task:{task-1-abc}:notify:slack",
    ),
}


def public_methods(cls: type) -> set[str]:
    """Names of the callables a class defines for its users (no ``_`` prefix)."""
    return {
        name
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_") and not inspect.isclass(member)
    }


def test_every_builder_returns_its_pinned_key() -> None:
    mismatched = {name: got for name, (got, want) in PINNED.items() if got != want}
    assert mismatched == {}


def test_every_public_builder_is_pinned() -> None:
    assert public_methods(Keys) == set(PINNED)


def test_default_prefix_is_hookagent() -> None:
    keys = Keys()
    assert keys.prefix == "hookagent"
    assert keys.task(TID) == "hookagent:task:{task-1-abc}"
    assert keys.logs(TID) == "hookagent:task:{task-1-abc}:logs"


def test_worker_group_name() -> None:
    assert WORKER_GROUP == "workers"


def test_notifier_group_name() -> None:
    assert NOTIFIER_GROUP == "notifiers"


def test_applied_ids_share_a_slot_with_their_stream() -> None:
    keys = Keys("hk")
    # A stream with a hash tag keeps it; one without is tagged by its whole name.
    assert keys.applied(keys.queue("jobs")) == "hk:queue:{jobs}:applied"
    assert keys.applied(keys.events()) == "hk:applied:{hk:events}"
