"""Every Redis key and group name hookagent uses, and nothing else.

Per-task keys share the hash tag ``{<task_id>}`` so a task's hash, history and log stream
live in one Redis Cluster slot and can be touched by one Lua script. The worker registry's
keys share ``{workers}`` for the same reason: one script writes a record and its index, and
the search postings share ``{terms}`` so one script intersects them. A task script never writes
another slot: what it changes elsewhere (the job, outbox and board streams, the status
indexes) it records as *effects* in the task's own list, applied right after (store/effects.py).
"""

from __future__ import annotations

from dataclasses import dataclass

WORKER_GROUP = "workers"
NOTIFIER_GROUP = "notifiers"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder bound to a prefix (``hookagent`` unless configured)."""

    prefix: str = "hookagent"

    def task(self, task_id: str) -> str:
        """The task's hash."""
        return f"{self.prefix}:task:{{{task_id}}}"

    def history(self, task_id: str) -> str:
        """The task's status history (a list of JSON records)."""
        return f"{self.prefix}:task:{{{task_id}}}:history"

    def logs(self, task_id: str) -> str:
        """The task's log stream; entry id ``0-<seq+1>``."""
        return f"{self.prefix}:task:{{{task_id}}}:logs"

    def effects(self, task_id: str) -> str:
        """The task's writes to other slots not yet applied (a list of JSON effects)."""
        return f"{self.prefix}:task:{{{task_id}}}:effects"

    def unsettled(self) -> str:
        """Sorted set of the tasks that may have effects left, scored by when (ms)."""
        return f"{self.prefix}:effects:unsettled"

    def applied(self, stream: str) -> str:
        """Sorted set of the effect ids already added to ``stream``, on the stream's slot."""
        # The stream's own hash tag, or its whole name as the tag: the same slot either way.
        if "{" in stream:
            return f"{stream}:applied"
        return f"{self.prefix}:applied:{{{stream}}}"

    def tasks_by_created(self) -> str:
        """Sorted set of every task id scored by creation time (ms)."""
        return f"{self.prefix}:tasks:created"

    def tasks_by_status(self, status: str) -> str:
        """Sorted set of the task ids currently in ``status``, scored by creation time."""
        return f"{self.prefix}:tasks:status:{status}"

    def queue(self, name: str) -> str:
        """A job stream, read by the consumer group :data:`WORKER_GROUP`."""
        return f"{self.prefix}:queue:{{{name}}}"

    def cancel_channel(self, task_id: str) -> str:
        """Pub/Sub channel on which a cancel of the task is announced to its worker."""
        return f"{self.prefix}:task:{{{task_id}}}:cancel"

    def progress(self, task_id: str) -> str:
        """The latest attempt's progress, as one JSON document."""
        return f"{self.prefix}:task:{{{task_id}}}:progress"

    def plans(self, task_id: str) -> str:
        """Every plan the task's planning attempts produced, oldest first."""
        return f"{self.prefix}:task:{{{task_id}}}:plans"

    def approvals(self, task_id: str) -> str:
        """Set of the people who approved the task's current plan (multi-approval policies)."""
        return f"{self.prefix}:task:{{{task_id}}}:approvals"

    def feedbacks(self, task_id: str) -> str:
        """Every reviewer feedback the task's plans answered, oldest first."""
        return f"{self.prefix}:task:{{{task_id}}}:feedbacks"

    def review_pending(self, task_id: str) -> str:
        """Review feedback on the task's change request waiting for the next round (JSON items)."""
        return f"{self.prefix}:task:{{{task_id}}}:review:pending"

    def review_current(self, task_id: str) -> str:
        """The feedback items of the round that is running (taken from the pending list)."""
        return f"{self.prefix}:task:{{{task_id}}}:review:current"

    def review_rounds(self, task_id: str) -> str:
        """Every finished round of the task, oldest first (JSON: number, items, outcome)."""
        return f"{self.prefix}:task:{{{task_id}}}:review:rounds"

    def review_seen(self, task_id: str) -> str:
        """Set of the feedback ids (``comment:<id>``) already stored for the task."""
        return f"{self.prefix}:task:{{{task_id}}}:review:seen"

    def events(self) -> str:
        """Capped stream of every task's status changes (and creations), for live boards."""
        return f"{self.prefix}:events"

    def postings(self, term: str) -> str:
        """Search index: the blocks of log lines holding ``term``, by task creation time."""
        return f"{self.prefix}:search:{{terms}}:postings:{term}"

    def delivery(self, source: str, delivery_id: str) -> str:
        """Marks a webhook delivery as seen (value: the task it created)."""
        return f"{self.prefix}:delivery:{source}:{delivery_id}"

    def command(self, source: str, event_id: str) -> str:
        """Marks a source's comment or action as used by a command (value: the verb)."""
        return f"{self.prefix}:command:{source}:{event_id}"

    def ref(self, source: str, ref: str) -> str:
        """Maps an outside object (Jira key, GitHub issue or PR, Sentry issue) to a task."""
        return f"{self.prefix}:ref:{source}:{ref}"

    def rate(self, source: str, window: int) -> str:
        """Deliveries counted from ``source`` in one fixed window (minute number since epoch)."""
        return f"{self.prefix}:rate:{source}:{window}"

    def unverified_rate(self, address: str, window: int) -> str:
        """Unverified deliveries counted from one client address in one fixed window."""
        return f"{self.prefix}:rate:unverified:{address}:{window}"

    def repo_runs(self, repo: str) -> str:
        """Sorted set of the agent runs holding a slot of ``repo``, scored by expiry (ms)."""
        return f"{self.prefix}:runs:{{{repo.lower()}}}"

    def repo_waiting(self, repo: str) -> str:
        """Sorted set of tasks told they wait for a slot of ``repo``, scored by when (ms)."""
        return f"{self.prefix}:runs:{{{repo.lower()}}}:waiting"

    def ticket(self, digest: str) -> str:
        """A single-use stream ticket, named by the SHA-256 of the ticket (never the ticket)."""
        return f"{self.prefix}:ticket:{digest}"

    def session(self, digest: str) -> str:
        """A web UI session, named by the SHA-256 of its cookie value (never the value)."""
        return f"{self.prefix}:session:{digest}"

    def agent_quota(self, agent: str) -> str:
        """Hash: the model quota of one agent, shared by every worker (until, reason, hits)."""
        return f"{self.prefix}:quota:{{agents}}:{agent}"

    def parked(self, task_id: str) -> str:
        """Hash: what a task parked on its agent's quota resumes with (agent, session, base)."""
        return f"{self.prefix}:task:{{{task_id}}}:parked"

    def worker(self, name: str) -> str:
        """A worker loop's heartbeat record (a hash that expires unless renewed)."""
        return f"{self.prefix}:worker:{{workers}}:{name}"

    def workers_by_seen(self) -> str:
        """Sorted set of worker names scored by their last heartbeat (Redis time, seconds)."""
        return f"{self.prefix}:workers:{{workers}}:seen"

    def outbox(self) -> str:
        """The outbox stream: one event per lifecycle change, read by :data:`NOTIFIER_GROUP`."""
        return f"{self.prefix}:outbox"

    def notify_state(self, task_id: str, channel: str) -> str:
        """Delivery state of one task on one channel (Slack ts, comment id, sent events)."""
        return f"{self.prefix}:task:{{{task_id}}}:notify:{channel}"

    def metrics(self) -> str:
        """Hash of counters every process adds to: log lines, cost, webhooks by outcome."""
        return f"{self.prefix}:metrics"

    def time_to_merge(self) -> str:
        """Hash of the time-to-merge histogram of change requests: buckets, ``sum``, ``count``."""
        return f"{self.prefix}:metrics:time_to_merge"

    def phase_durations(self, phase: str) -> str:
        """Hash of one phase's duration histogram: a count per bucket, ``sum``, ``count``."""
        return f"{self.prefix}:metrics:phase:{phase}"
