"""Which channels the settings turn on."""

from __future__ import annotations

from hookagent.forges import build_forges
from hookagent.forges.linear import LinearClient
from hookagent.notify.base import Sender
from hookagent.notify.forge import ForgeReply
from hookagent.notify.jira import JiraReply
from hookagent.notify.linear import LinearReply
from hookagent.notify.slack import SlackApp
from hookagent.notify.slack_webhook import SlackWebhook
from hookagent.notify.webhooks import OutboundWebhook
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Store


def build_senders(settings: Settings, store: Store, redactor: Redactor) -> list[Sender]:
    """One sender per configured channel; none configured means the outbox is just drained."""
    s = settings
    senders: list[Sender] = []
    if s.slack_bot_token is not None and s.slack_channel:
        senders.append(SlackApp(settings=s, store=store, redactor=redactor))
    if s.slack_webhook_url is not None:
        url = s.slack_webhook_url.get_secret_value()
        senders.append(SlackWebhook(url=url, settings=s, store=store, redactor=redactor))
    secret = s.notify_secret.get_secret_value() if s.notify_secret else None
    for url in s.notify_url_list:
        senders.append(OutboundWebhook(url=url, secret=secret, redactor=redactor))
    replies = {"github": s.github_reply, "gitlab": s.gitlab_reply}
    for name, forge in build_forges(s).items():
        if replies.get(name, True):
            senders.append(ForgeReply(forge=forge, settings=s, store=store, redactor=redactor))
    if s.jira_url and s.jira_email and s.jira_api_token is not None:
        senders.append(JiraReply(settings=s, redactor=redactor))
    linear = LinearClient.from_settings(s)
    if linear is not None and s.linear_reply:
        senders.append(LinearReply(client=linear, settings=s, redactor=redactor))
    return senders
