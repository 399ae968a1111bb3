"""Webhook sources: one parser and signature check per provider."""

from __future__ import annotations

from hookagent.sources.base import Ignored, verify_hmac_sha256, verify_token
from hookagent.sources.changes import ChangeEnded, Ending
from hookagent.sources.ci import ChecksFailed
from hookagent.sources.commands import Command, UnknownCommand, Verb
from hookagent.sources.feedback import Feedback
from hookagent.sources.github import parse_github
from hookagent.sources.gitlab import parse_gitlab
from hookagent.sources.jira import parse_jira
from hookagent.sources.linear import check_timestamp, linear_event_id, parse_linear
from hookagent.sources.sentry import parse_sentry
from hookagent.sources.slack import (
    SlackInteraction,
    parse_slack_interaction,
    verify_slack_signature,
)

__all__ = [
    "ChangeEnded",
    "ChecksFailed",
    "Command",
    "Ending",
    "Feedback",
    "Ignored",
    "SlackInteraction",
    "UnknownCommand",
    "Verb",
    "check_timestamp",
    "linear_event_id",
    "parse_github",
    "parse_gitlab",
    "parse_jira",
    "parse_linear",
    "parse_sentry",
    "parse_slack_interaction",
    "verify_hmac_sha256",
    "verify_slack_signature",
    "verify_token",
]
