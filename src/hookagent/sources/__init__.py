"""Webhook sources: one parser and signature check per provider."""

from __future__ import annotations

from hookagent.sources.base import Ignored, verify_hmac_sha256
from hookagent.sources.commands import Command, UnknownCommand, Verb
from hookagent.sources.github import parse_github
from hookagent.sources.jira import parse_jira
from hookagent.sources.sentry import parse_sentry

__all__ = [
    "Command",
    "Ignored",
    "UnknownCommand",
    "Verb",
    "parse_github",
    "parse_jira",
    "parse_sentry",
    "verify_hmac_sha256",
]
