"""Settings read from HOOKAGENT_* environment variables, built on demand."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import shlex
import socket
from pathlib import Path
from typing import Literal, get_args

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# A GitHub repository as HOOKAGENT_LINEAR_PROJECTS names it (a leaf: sources/repos.py not imported).
_OWNER_NAME = re.compile(r"[\w.-]+/[\w.-]+")
# One HOOKAGENT_EGRESS_ALLOW / policy ``network_allow`` entry (see parse_egress_entry).
_EGRESS_ENTRY = re.compile(
    r"(?:(?P<name>(?:\*\.)?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?)|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
# Values people paste from examples; a webhook "secured" by one of these is not secured.
_PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "xxx", "todo", "your-secret"})
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Settings(BaseSettings):
    """Every tunable of hookagent; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="HOOKAGENT_", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description=(
            "Redis/Valkey URL; unset → `up` starts the embedded Valkey "
            "(`server`/`worker` require it)"
        ),
    )
    # HOOKAGENT_REDIS_URL names any node of a Redis (or Valkey) Cluster; the rest is discovered.
    redis_cluster: bool = Field(
        default=False,
        description=(
            "`true`: `HOOKAGENT_REDIS_URL` names any node of a Redis Cluster (see Scaling out)"
        ),
    )
    key_prefix: str = Field(default="hookagent", description="prefix of every key")
    data_dir: Path = Field(
        default=Path(".hookagent"),
        description="embedded Valkey data (AOF), lock file, workspaces",
        json_schema_extra={"default_doc": "`./.hookagent`"},
    )
    workspace_dir: Path | None = Field(
        default=None,
        description="where task clones go",
        json_schema_extra={"default_doc": "`$DATA_DIR/workspaces`"},
    )
    cache_dir: Path | None = Field(
        default=None,
        description=(
            "root of the per-repository caches: each repository's own directory in it is "
            "mounted at the sandbox home's `.cache`, written only by setup on the remote's "
            "checkout (`XDG_CACHE_HOME`, `npm_config_cache`, `PIP_CACHE_DIR`, `UV_CACHE_DIR` "
            "point into it), read-only for the agent and the test command; never shared "
            "between repositories; `hookagent cache list|clear`"
        ),
        json_schema_extra={"default_doc": "`$DATA_DIR/cache`"},
    )
    cache_max_gb: float = Field(
        default=20.0,
        ge=0,
        description=(
            "size cap of all repository caches together; past it the least recently used "
            "are removed by the worker's sweep (every 10 minutes), never one in use (0: no cap)"
        ),
    )
    keep_failed_workspaces: float = Field(
        default=0.0,
        ge=0,
        description=(
            "hours a failed task's clone is kept for debugging (0: removed at once); others "
            "are removed when their task ends, leftovers by a sweep every 10 minutes"
        ),
    )

    host: str = Field(default="127.0.0.1", description="API bind address (`--host`)")
    port: int = Field(default=8000, ge=0, le=65535, description="API port (`--port`)")
    workers: int = Field(
        default=1,
        ge=0,
        le=64,
        description=(
            "worker processes of `up` (`--workers`, one loop each); worker loops of one "
            "`hookagent worker` (`--concurrency`, alias `--workers`)"
        ),
    )
    api_processes: int = Field(
        default_factory=lambda: max(1, (os.cpu_count() or 1) // 2),
        ge=1,
        le=64,
        description=(
            "API server processes of `up` and `server` (`--api-processes`), all serving "
            "`HOOKAGENT_PORT` from one listening socket; each is restarted if it dies"
        ),
        json_schema_extra={"default_doc": "half the cores, at least 1"},
    )
    # One line per request on stdout, uvicorn's text written by the front layer in batches;
    # off saves a few µs of a request's CPU on a busy API behind a proxy that logs.
    access_log: bool = Field(
        default=True,
        description=(
            "one line per request on stdout, in uvicorn's access-log format with the serving "
            "pid; `false` saves ~5% of a small request's CPU where a proxy logs requests "
            "already. Query values whose "
            "parameter name contains `token`, `key`, `secret`, `passw`, `sig`, `ticket` or "
            "`credential` (any case) are logged as `[REDACTED]`"
        ),
    )

    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="request body limit (413 above)"
    )
    require_signatures: bool | None = Field(
        default=None,
        description=(
            "refuse unsigned new-task deliveries from a source without a secret (401); "
            "auto: on unless `HOOKAGENT_HOST` is loopback. Commands always need a signed "
            "delivery"
        ),
        json_schema_extra={"default_doc": "auto"},
    )
    rate_limit: int = Field(
        default=600,
        ge=0,
        description=(
            "verified deliveries per minute per source, and unverified ones per client "
            "address apart, then 429 with `Retry-After` (0: off)"
        ),
    )
    max_queued: int = Field(
        default=1000,
        ge=0,
        description=(
            "queued tasks at which new-task deliveries answer 503 with `Retry-After` and "
            "write nothing (0: off)"
        ),
    )
    # ``role:token`` / ``role:name:token`` entries; parsed and checked by api/auth/tokens.py.
    api_tokens: SecretStr | None = Field(
        default=None,
        description=(
            "API tokens: comma-separated `role:token` or `role:name:token`, roles `viewer`, "
            "`operator`, `admin`; a token may be `sha256:<hex>` "
            "(see [Access control](#access-control))"
        ),
    )
    api_tokens_file: Path | None = Field(
        default=None,
        description=(
            "a file with the same entries (commas or newlines, `#` comments); refused if "
            "group/others may write it, a warning if they may read plain tokens in it"
        ),
    )
    allow_anonymous: bool = Field(
        default=False,
        description="serve a non-loopback address without tokens (everyone is admin)",
    )
    session_ttl: int = Field(
        default=12 * 3600,
        ge=60,
        description="seconds a web UI session lasts from its last use (each use renews it)",
    )
    session_max_age: int = Field(
        default=7 * 86400,
        ge=60,
        description=(
            "seconds a web UI session lasts at most from sign-in, however often it is used "
            "(the cookie's `Max-Age`)"
        ),
    )
    cors_origins: str = Field(
        default="",
        description="comma-separated browser origins allowed by CORS and by the Origin check",
    )
    trusted_proxies: str = Field(
        default="",
        description=(
            "comma-separated IP addresses or CIDR networks (`10.0.0.0/8, 192.0.2.7, ::1`) of "
            "reverse proxies whose `X-Forwarded-For` (and `X-Forwarded-Proto`) is believed; "
            "the client is the right-most address not in the list. Empty: the header is "
            "ignored, the client is the TCP peer. Used by the sign-in throttle, the anonymous "
            "actor's name and the access log alike"
        ),
    )
    sentry_client_secret: SecretStr | None = Field(
        default=None, description="verify `Sentry-Hook-Signature` (HMAC-SHA256, hex)"
    )
    jira_webhook_secret: SecretStr | None = Field(
        default=None, description="verify `X-Hub-Signature: sha256=…`"
    )
    default_repo: str | None = Field(
        default=None, description="repository when the payload names none"
    )
    allowed_repos: str = Field(
        default="",
        description="comma-separated `owner/name` list tasks may target",
        json_schema_extra={"default_doc": "any"},
    )
    git_url_template: str = Field(
        default="https://github.com/{repo}.git",
        description="clone URL (`file://…/{repo}.git` works)",
    )
    git_token: SecretStr | None = Field(
        default=None,
        description=(
            "token for clone and push over http(s); else the template's `user:token@` is "
            "used, else `HOOKAGENT_GITHUB_TOKEN` for github.com (or the Enterprise host of "
            "`HOOKAGENT_GITHUB_API_URL`). The user is the template's (`https://oauth2@…`), "
            "else `x-access-token`. Git gets it as a header in its environment: never in "
            "`origin`, on disk or in errors"
        ),
    )
    clone_timeout: float = Field(default=300.0, gt=0, description="seconds for `git clone`")
    forge_timeout: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description=(
            "seconds each request to the GitHub, GitLab, Linear or Sentry API may take (pull "
            "requests, comments, issue threads, the latest Sentry event); a slower one fails "
            "as unreachable"
        ),
    )

    agent: Literal["claude", "codex", "gemini", "command"] = Field(
        default="claude", description="`claude`, `codex`, `gemini` or `command`"
    )
    # Validated even when unset: the command agent without a command must be refused.
    agent_command: str = Field(
        default="",
        validate_default=True,
        description=(
            "the `command` adapter's command line (shlex-split; prompt on stdin; stdout is "
            "the plan)"
        ),
    )
    claude_bin: str = Field(default="claude", description="the Claude Code binary")
    codex_bin: str = Field(default="codex", description="the Codex CLI's binary")
    codex_base_url: str = Field(
        default="https://api.openai.com/v1",
        pattern=r"^https?://\S+$",
        description=(
            "the OpenAI-compatible Responses API Codex talks to: written as the model provider "
            "of each run's own `CODEX_HOME/config.toml` (Codex ignores `OPENAI_BASE_URL`); the "
            "key comes from `OPENAI_API_KEY`"
        ),
    )
    gemini_bin: str = Field(default="gemini", description="the Gemini CLI's binary")
    codex_home: Path | None = Field(
        default=None,
        description=(
            "a template `CODEX_HOME`: each run gets a private copy (regular files only, no "
            "symlinks) with hookagent's model provider added to its `config.toml`, which may "
            "not set `model_provider` or `profile` itself; the agent can read the copy"
        ),
    )
    gemini_home: Path | None = Field(
        default=None,
        description=(
            "a template `GEMINI_CLI_HOME` (holding `.gemini/`): each run gets a private copy "
            "(regular files only) with hookagent's auth and privacy settings set over its "
            "`.gemini/settings.json`; the agent can read the copy"
        ),
    )
    claude_config_dir: Path | None = Field(
        default=None,
        description=(
            "a template `CLAUDE_CONFIG_DIR`: each run gets a private copy (regular files "
            "only) as its `CLAUDE_CONFIG_DIR`; unset, the variable passes from the worker's "
            "environment as it is; the agent can read the copy"
        ),
    )
    agent_model: str | None = Field(default=None, description="`--model` for codex and gemini")
    claude_model: str | None = Field(default=None, description="`--model`")
    claude_max_turns: int | None = Field(default=None, ge=1, description="`--max-turns`")
    claude_extra_args: str = Field(default="", description="more arguments (shlex-split)")
    max_budget_usd: float | None = Field(
        default=None,
        gt=0,
        description=(
            "dollars per attempt: Claude's `--max-budget-usd`, and hookagent fails any run "
            "whose reported cost passes it"
        ),
    )
    max_runs_per_repo: int = Field(
        default=0,
        ge=0,
        description=(
            "agent runs of one repository at once across all workers (0: no limit); over it "
            "a job waits in the queue"
        ),
    )
    claude_allowed_tools: str = Field(
        default="Bash,Read,Edit,Write,Glob,Grep,MultiEdit,TodoWrite",
        description="`--allowedTools` for execution",
    )
    agent_env: str = Field(
        default="",
        pattern=r"^\s*([A-Za-z_][A-Za-z0-9_]*\*?\s*(,\s*|$))*$",
        description=(
            "comma-separated environment names (`FOO_*`: a prefix) passed to the agent "
            "besides `PATH HOME LANG LC_* TERM TMPDIR USER` and its CLI's own (`ANTHROPIC_*`, "
            "`CLAUDE_CODE_*`, `CLAUDE_CONFIG_DIR`; `OPENAI_API_KEY`, `OPENAI_BASE_URL`, "
            "`CODEX_*`; `GEMINI_*`, `GOOGLE_*`); nothing else of the worker's environment, "
            "and never `HOOKAGENT_*`"
        ),
    )
    sandbox: Literal["none", "bwrap"] = Field(
        default="none",
        description=(
            "`bwrap` (recommended in production; package `bubblewrap`) runs the agent in "
            "bubblewrap: system dirs read-only, its workspace the only writable place "
            "(read-only while planning) besides its run's configuration home, own `/tmp` and "
            "home, no view of the rest of the data dir, other workspaces or the real home; its "
            "network per HOOKAGENT_SANDBOX_NETWORK. If bwrap "
            "cannot run, tasks fail "
            "rather than run unsandboxed"
        ),
    )
    sandbox_network: Literal["allowlist", "host"] = Field(
        default="allowlist",
        description=(
            "under HOOKAGENT_SANDBOX=bwrap: `allowlist` gives the agent its own network "
            "namespace whose only way out is hookagent's per-task egress proxy; `host` shares "
            "the host's network (unsafe: the agent reaches Redis, the API and the metadata "
            "service)"
        ),
    )
    egress_allow: str = Field(
        default="",
        description=(
            "comma-separated `host[:port]` entries (`*.example.com` for any subdomain) the "
            "agent may reach through the egress proxy besides its model endpoint"
        ),
    )
    planning_timeout: float = Field(
        default=300.0,
        gt=0,
        description="seconds before the planning agent's group gets SIGTERM, then SIGKILL",
    )
    execution_timeout: float = Field(
        default=600.0, gt=0, description="seconds for the execution agent"
    )
    stall_timeout: float = Field(
        default=120.0, gt=0, description="seconds of silence before a `[system]` warning"
    )
    stall_kill: float | None = Field(
        default=None, gt=0, description="seconds of silence before the run fails as stalled"
    )
    approval_ttl: float | None = Field(
        default=None,
        gt=0,
        description="seconds a plan may wait for approval (then it is cancelled)",
    )
    policy_file: Path | None = Field(
        default=None,
        description=(
            "the approval-policy file (`hookagent.toml`, see "
            "[Approval policies](#approval-policies)), validated at start-up and re-read when "
            "it changes; unset: one approval, no per-repository rules"
        ),
    )
    shutdown_grace: float = Field(
        default=30.0,
        ge=0,
        description="seconds running jobs get on SIGTERM before they are handed back",
    )

    git_author_name: str = Field(
        default="hookagent", description="author name of hookagent's commits"
    )
    git_author_email: str = Field(
        default="hookagent@localhost", description="author e-mail of hookagent's commits"
    )
    github_api_url: str = Field(
        default="https://api.github.com",
        description="GitHub REST API (Enterprise: `https://host/api/v3`)",
    )
    github_token: SecretStr | None = Field(
        default=None, description="token that opens pull requests"
    )
    github_webhook_secret: SecretStr | None = Field(
        default=None, description="verify `X-Hub-Signature-256`"
    )
    github_label: str = Field(default="hookagent", description="the issue label that starts a task")
    github_approvers: str = Field(
        default="",
        description=(
            "logins or `id:<user id>` allowed to approve/reject/revise/cancel from GitHub "
            "(an id survives a rename)"
        ),
    )
    jira_approvers: str = Field(
        default="",
        description=(
            "Jira account ids or e-mails allowed to act (Data Center: usernames or user keys; "
            "never display names)"
        ),
    )
    jira_approve_status: str = Field(
        default="Approved", description="the Jira transition that approves"
    )
    jira_reject_status: str = Field(
        default="Rejected", description="the Jira transition that rejects"
    )
    public_url: str = Field(
        default="",
        description=(
            "link back to the task in pull requests; unset, the address served (the host "
            "name when bound to `0.0.0.0`)"
        ),
        json_schema_extra={"default_doc": "`http://{HOST}:{PORT}`"},
    )
    dedupe_ttl: int = Field(default=86400, ge=60, description="seconds a delivery id is remembered")
    feedback_debounce_s: float = Field(
        default=30.0,
        ge=0,
        description=(
            "review feedback on a pull or merge request arriving within this many seconds of "
            "the previous one joins the same round; the round starts once it is quiet"
        ),
    )
    kill_grace: float = Field(default=5.0, gt=0, description="seconds between SIGTERM and SIGKILL")
    agent_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description=(
            "how much nicer than the worker the agent runs (its whole process tree, bwrap "
            "included), also in the idle I/O class, so the API, notifier and Valkey keep "
            "their CPU; `0`: the worker's priorities unchanged"
        ),
    )

    log_ttl: int = Field(
        default=86400,
        ge=1,
        description="seconds a task's log is kept (refreshed on every batch)",
    )
    task_ttl: int = Field(
        default=7 * 86400,
        ge=1,
        description="seconds a task record is kept (refreshed on every change)",
    )
    log_max_lines: int = Field(
        default=200_000,
        ge=2,
        description="per-task cap; the last entry says the limit was reached",
    )
    log_line_max: int = Field(
        default=64 * 1024,
        ge=64,
        description="characters per stored message before it is cut",
    )
    log_raw_max: int = Field(
        default=16 * 1024,
        ge=0,
        description="characters of the raw agent event kept per entry",
    )
    log_batch_lines: int = Field(default=2000, ge=1, description="lines per append round trip")
    log_flush_ms: int = Field(
        default=50, ge=1, le=1000, description="longest a line waits before it is written"
    )
    log_hold_lines: int = Field(
        default=100_000,
        ge=0,
        description=(
            "lines of a running agent a worker holds in memory while Redis is unreachable; "
            "past that they go to a spill file in the data dir until Redis is back"
        ),
    )

    quota_wait_max: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "longest wait, in seconds, for a model quota (429, usage limit, overload) before "
            "the task's job runs again; without a Retry-After the wait doubles from 60 s up "
            "to this, and a wait past it hands the phase to the policy's fallback_agents"
        ),
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="job lease; a dead worker's job is reclaimed after this",
    )
    max_deliveries: int = Field(
        default=3, ge=1, description='deliveries before a task fails with "worker lost"'
    )
    # Declared before heartbeat_seconds: its validator compares the two.
    ready_worker_age: float = Field(
        default=30.0,
        gt=0,
        description=(
            "seconds since a worker's last heartbeat within which it counts as alive for "
            "`/readyz`, `/workers` and `doctor`"
        ),
    )
    heartbeat_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "how often each worker loop renews its registry record; must be below "
            "`HOOKAGENT_READY_WORKER_AGE`"
        ),
    )

    # Notifications (notify/): every channel is optional and off until configured.
    slack_bot_token: SecretStr | None = Field(
        default=None,
        description="Slack app mode: bot token (`xoxb-…`), with `HOOKAGENT_SLACK_CHANNEL`",
    )
    slack_channel: str | None = Field(
        default=None, description="channel id or `#name` of the task messages"
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description=(
            "verifies `/webhooks/slack/interactions` (unset: every interaction is refused)"
        ),
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        description="Slack Web API base URL (tests point it at a stub)",
    )
    slack_approvers: str = Field(
        default="", description="Slack user ids (`U…`) whose buttons count"
    )
    slack_snippet_interval: float = Field(
        default=60.0,
        gt=0,
        description="seconds between log snippets in a running task's thread",
    )
    # The URL itself is the credential.
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="incoming-webhook mode: one message per event"
    )
    notify_urls: str = Field(
        default="", description="signed outbound webhooks (comma-separated URLs)"
    )
    notify_secret: SecretStr | None = Field(
        default=None, description="the HMAC key that signs the outbound webhooks"
    )
    notify_max_attempts: int = Field(
        default=6,
        ge=1,
        description="tries per event and channel before giving up (with a log line)",
    )
    notify_lease: float = Field(
        default=60.0,
        gt=0,
        description=(
            "seconds an event may sit with a silent notifier before another takes it over"
        ),
    )
    github_reply: bool = Field(
        default=True,
        description="with a token, keep one comment on the originating issue up to date",
    )
    github_bot_login: str | None = Field(
        default=None, description="hookagent's GitHub login: its comments are never commands"
    )
    gitlab_api_url: str = Field(
        default="https://gitlab.com/api/v4",
        description="GitLab REST API v4 (self-managed: `https://host/api/v4`)",
    )
    gitlab_token: SecretStr | None = Field(
        default=None,
        description=(
            "token (`api` scope) that opens merge requests, writes the issue note, clones "
            "and pushes"
        ),
    )
    gitlab_webhook_secret: SecretStr | None = Field(
        default=None,
        description="compared with `X-Gitlab-Token`; unset, GitLab deliveries are unsigned",
    )
    gitlab_label: str = Field(default="hookagent", description="the issue label that starts a task")
    gitlab_approvers: str = Field(
        default="",
        description="GitLab usernames or `id:<user id>` allowed to approve/reject/revise/cancel",
    )
    gitlab_bot_username: str | None = Field(
        default=None,
        description="hookagent's GitLab username: its notes are never commands",
    )
    gitlab_reply: bool = Field(
        default=True,
        description="with a token, keep one note on the originating issue up to date",
    )
    gitlab_url_template: str = Field(
        default="",
        description=(
            "clone URL of GitLab projects (`{repo}` = `path_with_namespace`); unset, beside "
            "the API URL (the project's `http_url_to_repo`)"
        ),
        json_schema_extra={"default_doc": "unset"},
    )
    jira_url: str | None = Field(
        default=None,
        description="Jira's address: reply on the Jira issue (REST v2, basic auth)",
    )
    jira_email: str | None = Field(
        default=None, description="the Jira user (e-mail) of the basic auth"
    )
    jira_api_token: SecretStr | None = Field(
        default=None, description="the Jira API token of the basic auth"
    )
    jira_transition_on_pr: str | None = Field(
        default=None,
        description="transition (by name) applied once the pull request is open",
    )
    linear_webhook_secret: SecretStr | None = Field(
        default=None,
        description=(
            "verify `Linear-Signature` (and `webhookTimestamp` within 60 s); unset, Linear "
            "deliveries are unsigned"
        ),
    )
    linear_api_url: str = Field(
        default="https://api.linear.app/graphql", description="Linear's GraphQL endpoint"
    )
    linear_api_key: SecretStr | None = Field(
        default=None,
        description="personal API key that writes the issue comment and reads the thread",
    )
    linear_label: str = Field(
        default="hookagent",
        description="the issue label that starts a task (empty: refused at startup)",
    )
    linear_approvers: str = Field(
        default="",
        description=(
            "Linear user ids or e-mails allowed to approve/reject/revise/cancel (not display names)"
        ),
    )
    linear_bot_user: str | None = Field(
        default=None,
        description="the API key's user (id or e-mail): its comments are never commands",
    )
    linear_reply: bool = Field(
        default=True,
        description="with a key, keep one comment on the originating issue up to date",
    )
    linear_projects: str = Field(
        default="",
        validate_default=True,
        description=(
            "project → repository: `Name=owner/repo,…` or a JSON object; a value not "
            "`owner/name` is refused at startup; its repositories are also the ones a "
            "`repo:` label may name"
        ),
    )
    sentry_api_url: str = Field(
        default="https://sentry.io",
        description="Sentry (self-hosted: its address) for the latest-event read",
    )
    sentry_api_token: SecretStr | None = Field(
        default=None,
        description=(
            "token (`event:read`) that reads an issue's latest event when the webhook lacked "
            "frames or breadcrumbs"
        ),
    )
    sentry_org: str | None = Field(
        default=None,
        description=(
            "organisation slug: use the organisation's issue-events endpoint; unset, the "
            "older `/api/0/issues/…` one"
        ),
    )

    @field_validator(
        "sentry_client_secret",
        "jira_webhook_secret",
        "github_webhook_secret",
        "github_token",
        "gitlab_webhook_secret",
        "gitlab_token",
        "git_token",
        "slack_bot_token",
        "slack_signing_secret",
        "notify_secret",
        "jira_api_token",
        "linear_webhook_secret",
        "linear_api_key",
        "sentry_api_token",
    )
    @classmethod
    def _refuse_placeholders(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if value.get_secret_value().strip().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder; set a real secret or leave it unset")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _blank_tokens_are_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None or not value.get_secret_value().strip() else value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        _networks(value)
        return value

    @field_validator("agent_command")
    @classmethod
    def _command_agent_needs_command(cls, value: str, info: ValidationInfo) -> str:
        # shlex errors (an unclosed quote) belong here too, not in the first task's run.
        if not shlex.split(value) and info.data.get("agent") == "command":
            raise ValueError(
                "is empty but HOOKAGENT_AGENT=command needs it: set the command line to run "
                "(it reads the prompt on stdin; its stdout is the plan)"
            )
        return value

    @field_validator("heartbeat_seconds")
    @classmethod
    def _beat_within_ready_age(cls, value: float, info: ValidationInfo) -> float:
        # Slower heartbeats would make /readyz report live workers as gone between beats.
        age = info.data.get("ready_worker_age")
        if age is not None and value >= age:
            raise ValueError(f"must be below HOOKAGENT_READY_WORKER_AGE ({age:g} seconds)")
        return value

    @field_validator("linear_projects")
    @classmethod
    def _projects_parse(cls, value: str) -> str:
        _project_pairs(value)
        return value

    @field_validator("linear_label")
    @classmethod
    def _label_named(cls, value: str) -> str:
        # Empty, no label matches: every labelled issue would be silently ignored.
        if not value.strip():
            raise ValueError("must name the label that starts a task")
        return value

    @field_validator("egress_allow")
    @classmethod
    def _egress_entries_parse(cls, value: str) -> str:
        for entry in split_list(value):
            parse_egress_entry(entry)
        return value

    @field_validator("claude_extra_args")
    @classmethod
    def _split_cleanly(cls, value: str) -> str:
        shlex.split(value)
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _cluster_needs_url(cls, value: bool, info: ValidationInfo) -> bool:
        # The embedded Valkey of `hookagent up` is a single server, never a cluster.
        if value and not info.data.get("redis_url"):
            raise ValueError("needs HOOKAGENT_REDIS_URL naming a node of the cluster")
        return value

    @model_validator(mode="after")
    def _default_public_url(self) -> Settings:
        # Links in pull requests must point at the port this process serves, not a constant.
        if not self.public_url:
            host = self.host
            if host in ("", "0.0.0.0", "::"):
                host = socket.gethostname()
            if ":" in host:
                host = f"[{host}]"
            self.public_url = f"http://{host}:{self.port}"
        return self

    @property
    def signatures_required(self) -> bool:
        """Whether unsigned new-task deliveries are refused (auto: when not bound to loopback)."""
        if self.require_signatures is not None:
            return self.require_signatures
        return not is_loopback(self.host)

    @property
    def workspaces(self) -> Path:
        """Where task workspaces are cloned."""
        return self.workspace_dir or self.data_dir / "workspaces"

    @property
    def caches(self) -> Path:
        """Where the per-repository caches live."""
        return self.cache_dir or self.data_dir / "cache"

    @property
    def spill_dir(self) -> Path:
        """Where workers hold log lines on disk while Redis is unreachable."""
        return self.data_dir / "spill"

    @property
    def worker_ttl(self) -> int:
        """Seconds a worker's heartbeat record outlives its last beat."""
        return math.ceil(max(self.ready_worker_age, 3 * self.heartbeat_seconds))

    @property
    def allowed_repo_set(self) -> frozenset[str]:
        """Repositories tasks may target; empty means any."""
        return frozenset(r.strip().lower() for r in self.allowed_repos.split(",") if r.strip())

    def approvers(self, source: str) -> frozenset[str]:
        """Who may approve from ``source`` (logins, Jira or Linear ids or e-mails; no names)."""
        raw = {
            "github": self.github_approvers,
            "gitlab": self.gitlab_approvers,
            "jira": self.jira_approvers,
            "linear": self.linear_approvers,
            "slack": self.slack_approvers,
        }.get(source, "")
        return frozenset(a.strip().lower() for a in raw.split(",") if a.strip())

    @property
    def linear_project_map(self) -> dict[str, str]:
        """Linear project name (lower-case) → the repository its issues' tasks target."""
        return _project_pairs(self.linear_projects)

    @property
    def gitlab_clone_template(self) -> str:
        """Where GitLab projects are cloned from: the template, else beside the API."""
        if self.gitlab_url_template:
            return self.gitlab_url_template
        root = self.gitlab_api_url.rstrip("/").removesuffix("/api/v4")
        return f"{root}/{{repo}}.git"

    @property
    def cors_origin_list(self) -> list[str]:
        """Browser origins allowed to call the API (CORS and the Origin check); empty: none."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        """The networks whose ``X-Forwarded-For`` is believed (HOOKAGENT_TRUSTED_PROXIES)."""
        return _networks(self.trusted_proxies)

    @property
    def notify_url_list(self) -> list[str]:
        """Where signed outbound webhooks go."""
        return [u.strip() for u in self.notify_urls.split(",") if u.strip()]

    @property
    def allowed_tools(self) -> list[str]:
        """Tools the execution agent may use without asking."""
        return [t.strip() for t in self.claude_allowed_tools.split(",") if t.strip()]

    @property
    def agent_argv(self) -> list[str]:
        """The `command` adapter's argv."""
        return shlex.split(self.agent_command)

    @property
    def claude_extra_argv(self) -> list[str]:
        """Extra arguments appended to every Claude Code invocation."""
        return shlex.split(self.claude_extra_args)


def _project_pairs(raw: str) -> dict[str, str]:
    """``Name=owner/repo,…`` or a JSON object of names to repositories, names lower-cased."""
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            loaded = json.loads(raw)
        except ValueError:
            raise ValueError("is not a valid JSON object") from None
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise ValueError("must map project names to repository names")
        pairs = [(str(k), v) for k, v in loaded.items()]
    else:
        pairs = []
        for part in filter(str.strip, raw.split(",")):
            name, sep, repo = part.partition("=")
            if not sep or not name.strip() or not repo.strip():
                raise ValueError(f"entry {part.strip()!r} is not 'Project name=owner/repo'")
            pairs.append((name, repo))
    for name, repo in pairs:
        if not _OWNER_NAME.fullmatch(repo.strip()):
            raise ValueError(f"project {name.strip()!r} maps to {repo.strip()!r}, not 'owner/name'")
    return {name.strip().lower(): repo.strip() for name, repo in pairs}


def split_list(raw: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated setting."""
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_egress_entry(entry: str) -> tuple[str, int | None]:
    """An egress allowlist entry as (host pattern in lower case, port or None for any port).

    ``host``, ``host:port``, ``*.domain[:port]`` (any subdomain, not the domain itself),
    an IPv4 address or a bracketed IPv6 one (``[::1]:8080``). ValueError says what is wrong.
    """
    match = _EGRESS_ENTRY.fullmatch(entry.strip())
    if match is None:
        raise ValueError(
            f"entry {entry.strip()!r} is not host[:port], *.domain[:port] or [ipv6][:port]"
        )
    host = (match.group("name") or match.group("ipv6")).lower().rstrip(".")
    if match.group("ipv6") is not None:
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"entry {entry.strip()!r}: {host!r} is not an IPv6 address") from None
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise ValueError(f"entry {entry.strip()!r}: port {port} is not between 1 and 65535")
    return host, None if port is None else int(port)


def _networks(raw: str) -> tuple[IPNetwork, ...]:
    """``10.0.0.0/8, 192.0.2.7, ::1`` as networks (an address is a network of one)."""
    found: list[IPNetwork] = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            found.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part[:64]!r} is not an IP address or a CIDR network") from None
    return tuple(found)


def split_api_tokens(text: str) -> list[tuple[str, str | None, str]]:
    """``HOOKAGENT_API_TOKENS`` (or its file) as ``(role, name or None, token)``, unchecked.

    Entries are ``role:token`` or ``role:name:token``, separated by commas or newlines; lines
    starting with ``#`` are comments. A token written ``sha256:<hex>`` is a digest: the colon
    after ``sha256`` does not start a token. api/auth/tokens.py checks each part; the
    redactor (secret_values.py) takes the plain tokens, so both read entries alike.
    """
    entries: list[tuple[str, str | None, str]] = []
    pieces = [
        piece.strip()
        for line in text.splitlines()
        if not line.strip().startswith("#")
        for piece in line.split(",")
    ]
    for piece in filter(None, pieces):
        role, _, rest = piece.partition(":")
        name: str | None = None
        if not rest.startswith("sha256:"):
            before, colon, after = rest.partition(":")
            if colon:
                name, rest = before.strip(), after
        entries.append((role.strip(), name, rest.strip()))
    return entries


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only: ``localhost`` (any case), 127.0.0.0/8 or ``::1``.

    The one check for "bound to loopback" and "a loopback page": an IPv4 loopback address
    mapped into IPv6 (``::ffff:127.0.0.1``) counts; a bracketed IPv6 literal is read without
    its brackets. Any other name, and ``""`` (all interfaces), is reachable from elsewhere.
    """
    text = host.strip()
    text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if text.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


class ClientSettings(BaseSettings):
    """What the CLI's client commands read from the environment: HOOKAGENT_URL, _TOKEN."""

    model_config = SettingsConfigDict(env_prefix="HOOKAGENT_", extra="ignore")

    url: str = Field(
        default="http://127.0.0.1:8000",
        description="the server the CLI's client commands talk to (`--url` wins)",
    )
    token: SecretStr | None = Field(
        default=None,
        description="the API token the CLI's client commands send (`--token` wins)",
    )


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]


def describe_errors(error: ValidationError) -> list[str]:
    """One line per refused setting, named as its environment variable, saying what to do."""
    lines = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        name = f"HOOKAGENT_{field.upper()}" if field else "settings"
        info = Settings.model_fields.get(field)
        if item["type"] == "literal_error" and info is not None:
            message = "must be one of " + ", ".join(map(str, get_args(info.annotation)))
        else:
            message = item["msg"].removeprefix("Value error, ")
            message = message[:1].lower() + message[1:]
        # Secrets are never echoed, not even a refused one.
        secret = info is not None and SecretStr in (get_args(info.annotation) or (info.annotation,))
        given = item.get("input")
        shown = "" if secret or given in (None, "") else f" (got {given!r})"
        lines.append(f"{name}: {message}{shown}")
    return lines
