"""Slack interactivity: the request signature, and what a button click or modal says."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from hookagent.errors import PayloadError, SignatureError
from hookagent.sources.base import Ignored, event_key, obj, text
from hookagent.sources.commands import Verb
from hookagent.sources.payload import parse_json

MAX_AGE_S = 300  # Slack's advice: refuse requests older than five minutes (replays)
REVISE_CALLBACK = "hookagent_revise"
_BUTTONS = {"approve": Verb.APPROVE, "reject": Verb.REJECT, "revise": Verb.REVISE}


@dataclass(frozen=True, slots=True)
class SlackInteraction:
    """A decision from Slack: a button (``trigger_id`` set) or the revise modal (``feedback``).

    ``event_id`` is Slack's own id of the click (``action:<action_ts>``) or of the modal
    (``view:<view id>``): the same one again is a replay, whatever its request timestamp.
    """

    verb: Verb
    task_id: str
    user_id: str
    user_name: str
    trigger_id: str | None = None
    feedback: str | None = None
    event_id: str | None = None

    @property
    def voter(self) -> str:
        """Who casts the vote: ``slack:<user id>``; the name is for display only."""
        return f"slack:{self.user_id}"


def verify_slack_signature(
    body: bytes, secret: str | None, timestamp: str | None, signature: str | None, *, now: float
) -> None:
    """``v0=`` HMAC-SHA256 of ``v0:<timestamp>:<raw body>``, and fresh; else a 401."""
    if not secret:
        raise SignatureError("HOOKAGENT_SLACK_SIGNING_SECRET is not set; interactions are refused")
    if not timestamp or not signature:
        raise SignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature")
    if not timestamp.strip().isdigit():
        raise SignatureError("X-Slack-Request-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > MAX_AGE_S:
        raise SignatureError("request timestamp is more than 5 minutes away; replay refused")
    base = b"v0:" + timestamp.strip().encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureError("signature does not match the body")


def parse_slack_interaction(body: bytes) -> SlackInteraction:
    """The form field ``payload``: ``block_actions`` (our buttons) or our modal's submission."""
    fields = parse_qs(body.decode("utf-8", "replace"))
    raw = (fields.get("payload") or [""])[0]
    if not raw:
        raise PayloadError("Slack interaction without a payload field")
    # The webhooks' parser: its depth check keeps a deeply nested payload a 400, not a 500.
    payload = obj(parse_json(raw))
    user = obj(payload.get("user"))
    user_id = text(user.get("id"))
    if not user_id:
        raise PayloadError("Slack interaction without a user id")
    name = text(user.get("username")) or text(user.get("name")) or user_id
    kind = text(payload.get("type"))
    if kind == "block_actions":
        return _button(payload, user_id, name)
    if kind == "view_submission":
        return _modal(obj(payload.get("view")), user_id, name)
    raise Ignored(f"Slack interaction {kind or '(none)'!r} is not handled")


def _button(payload: dict[str, Any], user_id: str, name: str) -> SlackInteraction:
    actions = payload.get("actions") or []
    action = obj(actions[0]) if isinstance(actions, list) and actions else {}
    verb = _BUTTONS.get(text(action.get("action_id")))
    task_id = text(action.get("value"))
    if verb is None or not task_id:
        raise Ignored("not one of hookagent's buttons")
    trigger = text(payload.get("trigger_id")) or None
    click = event_key("action", action.get("action_ts"))
    return SlackInteraction(verb, task_id, user_id, name, trigger_id=trigger, event_id=click)


def _modal(view: dict[str, Any], user_id: str, name: str) -> SlackInteraction:
    if text(view.get("callback_id")) != REVISE_CALLBACK:
        raise Ignored("not hookagent's modal")
    task_id = text(view.get("private_metadata"))
    values = obj(obj(view.get("state")).get("values"))
    feedback = text(obj(obj(values.get("feedback")).get("feedback")).get("value"))
    if not task_id:
        raise PayloadError("revise modal without its task id")
    view_id = event_key("view", view.get("id"))
    return SlackInteraction(
        Verb.REVISE, task_id, user_id, name, feedback=feedback, event_id=view_id
    )
