"""Which values this process must never let into a log: from Settings and the environment."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import SecretStr

from hookagent.redact import Redactor
from hookagent.settings import Settings, split_api_tokens

log = logging.getLogger(__name__)

# Names that hold credentials by convention: GITHUB_TOKEN, ANTHROPIC_API_KEY,
# AWS_SECRET_ACCESS_KEY, PGPASSWORD, HOOKAGENT_JIRA_WEBHOOK_SECRET, STRIPE_KEY…
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:API_?KEY|TOKEN|SECRET|PASSWD|PRIVATE_KEY|CREDENTIALS?)(?:_|$)"
    r"|PASSWORD|_KEY$"
)
# ...unless the variable names where the secret lives rather than the secret itself.
_POINTER_NAME = re.compile(r"_(?:FILE|PATH|DIR)$")


def secret_env_names(environ: Mapping[str, str]) -> list[str]:
    """The variables in ``environ`` whose names say they hold a secret."""
    return sorted(
        name
        for name in environ
        if _SECRET_NAME.search(name.upper()) and not _POINTER_NAME.search(name.upper())
    )


def url_secrets(url: str, *, user_is_secret: bool = False) -> list[str]:
    """The password in ``url`` (``scheme://user:password@host``), if it carries one.

    With ``user_is_secret``, a user without a password counts too: that is how a token
    goes into a git URL (``https://<token>@github.com/…``).
    """
    if "@" not in url or "://" not in url:
        return []
    try:
        parts = urlsplit(url.replace("{repo}", "owner/name"))
        password, user = parts.password, parts.username
    except ValueError:
        return []
    if password:
        return [password]
    return [user] if user and user_is_secret else []


def api_tokens(settings: Settings) -> list[str]:
    """Each plain API token of ``HOOKAGENT_API_TOKENS`` and ``HOOKAGENT_API_TOKENS_FILE``.

    The whole setting is one secret too, but an agent that prints one token prints it alone.
    ``sha256:<hex>`` entries are digests, not tokens. The file is read here as the token book
    reads it, once at start; one this process cannot read is logged, not fatal: a worker
    without the API's secret mount cannot show the agent what it cannot read itself.
    """
    texts = [settings.api_tokens.get_secret_value()] if settings.api_tokens else []
    if settings.api_tokens_file is not None:
        try:
            texts.append(settings.api_tokens_file.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            log.warning(
                "HOOKAGENT_API_TOKENS_FILE: cannot read %s (%s): its tokens are not redacted "
                "by this process",
                settings.api_tokens_file,
                type(exc).__name__,
            )
    return [
        token
        for text in texts
        for _, _, token in split_api_tokens(text)
        if token and not token.startswith("sha256:")
    ]


def secret_values(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret value hookagent knows of; short ones are dropped later by the Redactor.

    Every ``SecretStr`` field of ``settings`` (found by type, so a new secret setting is
    covered without a change here), each API token on its own (:func:`api_tokens`),
    passwords in URL-valued settings, the credential in ``git_url_template``, and the
    environment variables whose names say they are secret (the agent's model API key
    among them).
    """
    env = os.environ if environ is None else environ
    values: list[str] = api_tokens(settings)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
        elif isinstance(value, str):
            values += url_secrets(value, user_is_secret=name == "git_url_template")
    values += (env[name] for name in secret_env_names(env))
    return [value for value in dict.fromkeys(values) if value]


def build_redactor(settings: Settings, environ: Mapping[str, str] | None = None) -> Redactor:
    """The redactor for this process: its configured secrets plus the known shapes."""
    return Redactor(secret_values(settings, environ))
