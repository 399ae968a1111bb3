"""The table of webhook sources one route reads: secret, verifier, delivery id, parser.

Every source goes through the same steps (api/routes/webhooks.py): verify the raw body
against the source's secret, count it, parse it, dedupe it, then start a task or apply a
command. What differs between sources is data, and it is all here: the setting that holds
the secret, how the signature is carried, which header or payload field identifies a
delivery, the parser and the settings its command rules read (labels, bot accounts,
Jira's approving statuses).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from hookagent.models import NewTask
from hookagent.settings import Settings
from hookagent.sources.base import obj, text, verify_hmac_sha256, verify_token
from hookagent.sources.changes import ChangeEnded
from hookagent.sources.ci import ChecksFailed, parse_github_checks, parse_gitlab_pipeline
from hookagent.sources.commands import Command
from hookagent.sources.feedback import Feedback
from hookagent.sources.github import parse_github
from hookagent.sources.gitlab import parse_gitlab
from hookagent.sources.jira import parse_jira
from hookagent.sources.linear import check_timestamp, linear_event_id, parse_linear
from hookagent.sources.reviews import ReviewRequest, parse_github_review, parse_gitlab_review
from hookagent.sources.sentry import parse_sentry

Headers = Mapping[str, str]  # case-insensitive in practice (Starlette's Headers)
Parsed = NewTask | Command | ChangeEnded | Feedback | ReviewRequest | ChecksFailed
Verifier = Callable[[bytes, str, Headers], None]
Parser = Callable[[Any, Headers, Settings], Parsed]
DeliveryId = Callable[[Headers, Any, Parsed], str | None]


@dataclass(frozen=True, slots=True)
class Source:
    """One inbound webhook source, as the single webhook route needs it."""

    name: str
    description: str  # the route's summary in /openapi.json
    secret_field: str  # the Settings field holding the webhook secret
    verify: Verifier  # raises SignatureError unless the body matches the secret
    parse: Parser  # a task, a command, a review request, or Ignored / UnknownCommand
    delivery: DeliveryId  # what identifies this delivery for dedupe (None: nothing)
    fresh: Callable[[Any, float], None] | None = None  # a signed body's own timestamp check

    @property
    def secret_setting(self) -> str:
        """The environment variable of the secret (``HOOKAGENT_GITHUB_WEBHOOK_SECRET``)."""
        return f"HOOKAGENT_{self.secret_field.upper()}"

    def signed(self, settings: Settings, headers: Headers, body: bytes) -> bool:
        """Whether the body is verified: False with no secret set; SignatureError on a mismatch."""
        secret: SecretStr | None = getattr(settings, self.secret_field)
        if secret is None:
            return False
        self.verify(body, secret.get_secret_value(), headers)
        return True


def _hmac(header: str, prefix: str = "") -> Verifier:
    """A hex HMAC-SHA256 of the raw body in ``header``."""

    def verify(body: bytes, secret: str, headers: Headers) -> None:
        verify_hmac_sha256(body, secret, headers.get(header), prefix=prefix)

    return verify


def _token(header: str) -> Verifier:
    """A shared token in ``header``: GitLab signs nothing, the token is what counts."""

    def verify(body: bytes, secret: str, headers: Headers) -> None:
        verify_token(secret, headers.get(header))

    return verify


def _header(name: str) -> DeliveryId:
    """The delivery id the sender puts in header ``name``."""

    def delivery(headers: Headers, payload: Any, parsed: Parsed) -> str | None:
        return headers.get(name)

    return delivery


def _sentry_delivery(headers: Headers, payload: Any, parsed: Parsed) -> str | None:
    # Sentry sends no delivery id: the issue and the action are the delivery, when known.
    if not isinstance(parsed, NewTask) or not parsed.external_id:
        return None
    return f"{parsed.external_id}:{text(obj(payload).get('action'))}"


def _linear_delivery(headers: Headers, payload: Any, parsed: Parsed) -> str | None:
    # The signed comment or issue event, not the unsigned ``Linear-Delivery`` header: a
    # captured delivery resent under a new header within the minute is still a duplicate.
    return linear_event_id(payload) or headers.get("linear-delivery")


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            name="sentry",
            description=(
                "Sentry: the seed's shape, integration ``issue``/``event_alert``, "
                "or the legacy plugin."
            ),
            secret_field="sentry_client_secret",
            verify=_hmac("sentry-hook-signature"),
            parse=lambda payload, headers, settings: parse_sentry(
                payload,
                resource=headers.get("sentry-hook-resource"),
                default_repo=settings.default_repo,
            ),
            delivery=_sentry_delivery,
        ),
        Source(
            name="jira",
            description=(
                "Jira: ``jira:issue_created`` starts a task; comments and transitions command one."
            ),
            secret_field="jira_webhook_secret",
            verify=_hmac("x-hub-signature", "sha256="),
            parse=lambda payload, headers, settings: parse_jira(
                payload,
                default_repo=settings.default_repo,
                approve_status=settings.jira_approve_status,
                reject_status=settings.jira_reject_status,
            ),
            delivery=_header("x-atlassian-webhook-identifier"),
        ),
        Source(
            name="github",
            description=(
                "GitHub: a labelled issue starts a task; ``@hookagent <command>`` "
                "comments command one; a closed pull request ends its task."
            ),
            secret_field="github_webhook_secret",
            verify=_hmac("x-hub-signature-256", "sha256="),
            parse=lambda payload, headers, settings: (
                parse_github_checks(payload, event=headers.get("x-github-event"))
                or parse_github_review(
                    payload,
                    event=headers.get("x-github-event"),
                    bot_login=settings.github_bot_login,
                )
                or parse_github(
                    payload,
                    event=headers.get("x-github-event"),
                    label=settings.github_label,
                    bot_login=settings.github_bot_login,
                )
            ),
            delivery=_header("x-github-delivery"),
        ),
        Source(
            name="gitlab",
            description=(
                "GitLab: a labelled issue starts a task; ``@hookagent <command>`` "
                "notes command one; a merged or closed merge request ends its task."
            ),
            secret_field="gitlab_webhook_secret",
            verify=_token("x-gitlab-token"),
            parse=lambda payload, headers, settings: (
                parse_gitlab_pipeline(payload, event=headers.get("x-gitlab-event"))
                or parse_gitlab_review(
                    payload,
                    event=headers.get("x-gitlab-event"),
                    bot_username=settings.gitlab_bot_username,
                )
                or parse_gitlab(
                    payload,
                    event=headers.get("x-gitlab-event"),
                    label=settings.gitlab_label,
                    bot_username=settings.gitlab_bot_username,
                )
            ),
            delivery=_header("x-gitlab-event-uuid"),
        ),
        Source(
            name="linear",
            description=(
                "Linear: a labelled issue starts a task; ``@hookagent <command>`` "
                "comments command one."
            ),
            secret_field="linear_webhook_secret",
            verify=_hmac("linear-signature"),
            parse=lambda payload, headers, settings: parse_linear(
                payload,
                label=settings.linear_label,
                projects=settings.linear_project_map,
                default_repo=settings.default_repo,
                bot_user=settings.linear_bot_user,
                allowed_repos=settings.allowed_repo_set,
            ),
            delivery=_linear_delivery,
            fresh=check_timestamp,
        ),
    )
}
