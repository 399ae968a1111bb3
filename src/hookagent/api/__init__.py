"""The HTTP API: webhooks in, tasks and logs out."""

from __future__ import annotations

from hookagent.api.app import create_app

__all__ = ["create_app"]
