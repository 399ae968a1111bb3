"""``hookagent submit``: a saved payload posted as its source would, signed with its secret."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import time
from typing import Any

from hookagent.cli.api_client import request
from hookagent.cli.output import print_json
from hookagent.errors import HookagentError

# The setting holding each source's webhook secret, as the server reads it.
WEBHOOK_SECRETS = {
    "sentry": "HOOKAGENT_SENTRY_CLIENT_SECRET",
    "jira": "HOOKAGENT_JIRA_WEBHOOK_SECRET",
    "github": "HOOKAGENT_GITHUB_WEBHOOK_SECRET",
    "gitlab": "HOOKAGENT_GITLAB_WEBHOOK_SECRET",
    "linear": "HOOKAGENT_LINEAR_WEBHOOK_SECRET",
}


def submit(args: argparse.Namespace) -> int:
    """Post a payload file as the named source would, signed with its webhook secret."""
    try:
        with open(args.file, "rb") as handle:
            body = handle.read()
    except OSError as exc:
        raise HookagentError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        payload = json.loads(body)
    except ValueError as exc:
        # Checked here so a typo gets its reason, not the server's 400.
        raise HookagentError(f"{args.file} is not JSON: {exc}") from None
    setting = WEBHOOK_SECRETS[args.source]
    secret = args.secret or os.environ.get(setting) or None
    if secret is not None and args.source == "linear" and isinstance(payload, dict):
        # Linear's signature covers webhookTimestamp, which must be recent: a saved payload
        # goes out as if delivered now.
        payload["webhookTimestamp"] = int(time.time() * 1000)
        body = json.dumps(payload).encode()
    headers = {
        "content-type": "application/json",
        **event_headers(args.source, args.event, payload),
    }
    if secret is not None:
        headers |= signature_headers(args.source, body, secret)
    hint = f"set {setting} to the server's value, or pass --secret"
    response = request(
        args, "POST", f"/webhooks/{args.source}", content=body, headers=headers, hint=hint
    )
    print_json(response)
    return 0


def event_headers(source: str, event: str | None, payload: Any) -> dict[str, str]:
    """The header naming the delivery's event, for the sources that send one."""
    if source == "github":
        # A payload with a comment is an issue_comment delivery, any other an issues one.
        guessed = (
            "issue_comment" if isinstance(payload, dict) and "comment" in payload else "issues"
        )
        return {"x-github-event": event or guessed}
    names = {"gitlab": "x-gitlab-event", "sentry": "sentry-hook-resource"}
    return {names[source]: event} if event and source in names else {}


def signature_headers(source: str, body: bytes, secret: str) -> dict[str, str]:
    """The headers ``source`` signs ``body`` with, as its verifier in sources/ checks them."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "sentry": {"sentry-hook-signature": digest},
        "jira": {"x-hub-signature": f"sha256={digest}"},
        "github": {"x-hub-signature-256": f"sha256={digest}"},
        "gitlab": {"x-gitlab-token": secret},  # GitLab signs nothing: the token is the proof
        "linear": {"linear-signature": digest},
    }[source]
