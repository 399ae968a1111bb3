"""Notifications: the outbox consumer and one sender per channel."""

from __future__ import annotations

from hookagent.notify.base import Delivery, Sender
from hookagent.notify.notifier import Notifier
from hookagent.notify.senders import build_senders

__all__ = ["Delivery", "Notifier", "Sender", "build_senders"]
