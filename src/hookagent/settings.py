"""Settings read from HOOKAGENT_* environment variables, built on demand."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values people paste from examples; a webhook "secured" by one of these is not secured.
_PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "xxx", "todo", "your-secret"})


class Settings(BaseSettings):
    """Every tunable of hookagent; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="HOOKAGENT_", extra="ignore")

    redis_url: str | None = None
    key_prefix: str = "hookagent"
    data_dir: Path = Path(".hookagent")
    workspace_dir: Path | None = None
    keep_failed_workspaces: float = Field(default=0.0, ge=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=0, le=64)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    sentry_client_secret: SecretStr | None = None
    jira_webhook_secret: SecretStr | None = None
    default_repo: str | None = None
    allowed_repos: str = ""
    git_url_template: str = "https://github.com/{repo}.git"
    git_token: SecretStr | None = None
    clone_timeout: float = Field(default=300.0, gt=0)

    agent: Literal["claude", "codex", "gemini", "command"] = "claude"
    agent_command: str = ""
    claude_bin: str = "claude"
    codex_bin: str = "codex"
    gemini_bin: str = "gemini"
    agent_model: str | None = None
    claude_model: str | None = None
    claude_max_turns: int | None = Field(default=None, ge=1)
    claude_extra_args: str = ""
    claude_allowed_tools: str = "Bash,Read,Edit,Write,Glob,Grep,MultiEdit,TodoWrite"
    planning_timeout: float = Field(default=300.0, gt=0)
    execution_timeout: float = Field(default=600.0, gt=0)
    stall_timeout: float = Field(default=120.0, gt=0)
    stall_kill: float | None = Field(default=None, gt=0)
    approval_ttl: float | None = Field(default=None, gt=0)
    shutdown_grace: float = Field(default=30.0, ge=0)

    git_author_name: str = "hookagent"
    git_author_email: str = "hookagent@localhost"
    github_api_url: str = "https://api.github.com"
    github_token: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    github_label: str = "hookagent"
    github_approvers: str = ""
    jira_approvers: str = ""
    jira_approve_status: str = "Approved"
    jira_reject_status: str = "Rejected"
    public_url: str = "http://127.0.0.1:8000"
    dedupe_ttl: int = Field(default=86400, ge=60)
    kill_grace: float = Field(default=5.0, gt=0)

    log_ttl: int = Field(default=86400, ge=1)
    task_ttl: int = Field(default=7 * 86400, ge=1)
    log_max_lines: int = Field(default=200_000, ge=2)
    log_line_max: int = Field(default=64 * 1024, ge=64)
    log_raw_max: int = Field(default=16 * 1024, ge=0)
    log_batch_lines: int = Field(default=2000, ge=1)
    log_flush_ms: int = Field(default=50, ge=1, le=1000)

    lease_seconds: float = Field(default=30.0, gt=0)
    max_deliveries: int = Field(default=3, ge=1)

    @field_validator(
        "sentry_client_secret",
        "jira_webhook_secret",
        "github_webhook_secret",
        "github_token",
        "git_token",
    )
    @classmethod
    def _refuse_placeholders(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if value.get_secret_value().strip().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder; set a real secret or leave it unset")
        return value

    @property
    def workspaces(self) -> Path:
        """Where task workspaces are cloned."""
        return self.workspace_dir or self.data_dir / "workspaces"

    @property
    def allowed_repo_set(self) -> frozenset[str]:
        """Repositories tasks may target; empty means any."""
        return frozenset(r.strip().lower() for r in self.allowed_repos.split(",") if r.strip())

    def approvers(self, source: str) -> frozenset[str]:
        """Who may approve from ``source`` (github logins, Jira account ids or names)."""
        raw = {"github": self.github_approvers, "jira": self.jira_approvers}.get(source, "")
        return frozenset(a.strip().lower() for a in raw.split(",") if a.strip())

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


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]
