"""Workers: claim jobs, run the agent for a phase, publish the result (commit, push, PR)."""

from __future__ import annotations

from hookagent.worker.loop import Worker
from hookagent.worker.run import line_sink

__all__ = ["Worker", "line_sink"]
