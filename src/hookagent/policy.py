"""Approval policies per repository, from the TOML file ``HOOKAGENT_POLICY_FILE`` names.

A ``[default]`` table and ``[repo."owner/name"]`` tables; a repository's keys override the
default's, key by key. The file is read again when its mtime (or size) changes, checked on
use: no polling loop. A file that turns invalid keeps the last good policy in force and the
error is logged; at start-up an invalid file stops the process (``load_policies``).
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hookagent.errors import PolicyError
from hookagent.models import Phase, utc_iso
from hookagent.settings import Settings, parse_egress_entry

log = logging.getLogger(__name__)

SETTING = "HOOKAGENT_POLICY_FILE"
_REPO_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLES = ("default", "repo")
# An MCP server's name: the CLIs build tool names from it (Claude ``mcp__<name>__<tool>``,
# Gemini ``mcp_<name>_<tool>``, which splits at the first ``_``), so no underscore.
_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}$")


class AutoRule(BaseModel):
    """One ``auto_approve`` rule: every key it sets must match the task (and its plan)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = None
    labels: tuple[str, ...] | None = None
    level: str | None = None
    max_files: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _not_empty(self) -> AutoRule:
        # An empty rule would approve everything; say so instead of doing it.
        if not self.model_fields_set:
            raise ValueError("an empty rule would approve every plan; name source, labels, ...")
        return self

    def matches(self, facts: Facts) -> bool:
        """Whether the task's facts satisfy every key of the rule."""
        if self.source is not None and self.source.lower() != facts.source.lower():
            return False
        if self.level is not None and self.level.lower() != (facts.level or "").lower():
            return False
        if self.labels is not None:
            have = {label.lower() for label in facts.labels}
            if not {label.lower() for label in self.labels} <= have:
                return False
        return self.max_files is None or facts.files <= self.max_files

    def describe(self) -> str:
        """The rule as a TOML inline table, as written in the file."""
        parts = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name} = {_toml(value)}")
        return "{" + ", ".join(parts) + "}"


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


class McpServer(BaseModel):
    """One ``[repo."o/n".mcp_servers.<name>]`` table: a stdio ``command`` or an HTTP ``url``.

    ``env`` lists variable names only; their values come from hookagent's environment when
    a run starts (and are redacted from its log).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str | None = Field(default=None, min_length=1)
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    url: str | None = None

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        # One program, not a shell line: no shell ever reads it.
        if value is not None and (value != value.strip() or "\0" in value):
            raise ValueError("must be a program name or path, without surrounding spaces")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name (names only)")
            if name.startswith("HOOKAGENT_"):
                # The server's config file sits in the run's home, which the agent reads:
                # hookagent's own secrets (the forge tokens, the API's) never go there.
                raise ValueError(f"{name!r}: hookagent's own settings are not given to tools")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("set either command (a stdio server) or url (an HTTP server)")
        if self.url is not None and (self.args or self.env):
            raise ValueError("args and env are for a command; an HTTP server takes only url")
        return self


@dataclass(frozen=True, slots=True)
class Facts:
    """What auto-approve rules look at: the task's source, labels, Sentry level, plan size."""

    source: str
    labels: tuple[str, ...] = ()
    level: str | None = None
    files: int = 0


class Policy(BaseModel):
    """The effective policy of one repository."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvals: int = Field(default=1, ge=1, le=20)
    auto_approve: tuple[AutoRule, ...] = ()
    agent: Literal["claude", "codex", "gemini", "command"] | None = None
    # Agents that take a phase over, in order, once the agent's quota wait would pass
    # HOOKAGENT_QUOTA_WAIT_MAX.
    fallback_agents: tuple[Literal["claude", "codex", "gemini", "command"], ...] = ()
    model: str | None = None
    max_budget_usd: float | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    allowed_tools: tuple[str, ...] | None = None
    paths_denied: tuple[str, ...] = ()
    # The forge's CI runs a pushed branch's own definitions with the repository's CI
    # secrets: a change to one is refused unless the operator lets them through.
    allow_ci_changes: bool = False
    allow_secrets_in: tuple[str, ...] = ()
    # ``host[:port]`` entries the agent may reach besides HOOKAGENT_EGRESS_ALLOW's.
    network_allow: tuple[str, ...] = ()
    # Per phase, over ``agent`` and ``model``.
    plan_agent: Literal["claude", "codex", "gemini", "command"] | None = None
    execute_agent: Literal["claude", "codex", "gemini", "command"] | None = None
    plan_model: str | None = None
    execute_model: str | None = None
    # The setup command (run by ``sh -c`` in the sandbox); None: the repository's
    # ``.hookagent/setup.sh`` if it has one; "": no setup at all.
    setup: str | None = None
    setup_network_allow: tuple[str, ...] = ()
    setup_timeout: float = Field(default=600.0, gt=0)
    # Names of hookagent's environment passed to setup only, never to the agent.
    setup_env: tuple[str, ...] = ()
    # The operator's instructions, added to both prompts; the file is read on each run.
    instructions: str | None = None
    instructions_file: Path | None = None
    # Review rounds on a change request hookagent opened; and who besides the source's
    # approvers may drive them or ask for a review (``@hookagent review``): logins as the
    # forge names them, or ``id:<user id>``.
    max_rounds: int = Field(default=5, ge=0, le=100)
    reviewers: tuple[str, ...] = ()
    # Review every pull request others open or push to (never hookagent's own).
    review_prs: bool = False
    # Failing checks on its change request: fix at once, offer ``@hookagent fix-ci``, or not.
    fix_ci: Literal["auto", "ask", "off"] = "ask"
    max_ci_fixes: int = Field(default=2, ge=0, le=20)
    # Tools the agent's CLI is given (Claude Code, Codex, Gemini), by server name.
    mcp_servers: dict[str, McpServer] = Field(default_factory=dict)
    # Run in the sandbox after execution; a failure gives the agent max_test_fixes more turns.
    test: str | None = None
    max_test_fixes: int = Field(default=1, ge=0, le=5)
    test_timeout: float = Field(default=600.0, gt=0)

    @field_validator("mcp_servers")
    @classmethod
    def _server_names(cls, value: dict[str, McpServer]) -> dict[str, McpServer]:
        for name in value:
            if not _SERVER_NAME.match(name):
                raise ValueError(
                    f"server name {name!r}: letters, digits and '-' only (no '_'), at most 32"
                )
        return value

    @field_validator("test")
    @classmethod
    def _test_command(cls, value: str | None) -> str | None:
        return value if value is None or value.strip() else None

    @field_validator("network_allow", "setup_network_allow")
    @classmethod
    def _egress_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            parse_egress_entry(entry)
        return value

    @field_validator("setup_env")
    @classmethod
    def _env_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _ENV_NAME.match(name) or name.startswith("HOOKAGENT_"):
                raise ValueError(f"{name!r} is not an environment name setup may receive")
        return value

    def over(self, base: Policy) -> Policy:
        """This policy's own keys over ``base``'s."""
        mine = self.model_dump(include=set(self.model_fields_set))
        return Policy.model_validate(base.model_dump() | mine)

    def auto_rule(self, facts: Facts) -> tuple[int, AutoRule] | None:
        """The first rule (numbered from 1) that approves the task, if any."""
        for number, rule in enumerate(self.auto_approve, start=1):
            if rule.matches(facts):
                return number, rule
        return None

    def run_settings(self, settings: Settings, phase: Phase | None = None) -> Settings:
        """``settings`` with this policy's agent, model, budget, timeout, tools and network.

        ``phase``: its own ``plan_``/``execute_`` agent and model win over ``agent``/``model``.
        """
        update: dict[str, Any] = {}
        agent, model = self.agent, self.model
        if phase is Phase.PLAN:
            agent, model = self.plan_agent or agent, self.plan_model or model
        elif phase in (Phase.EXECUTE, Phase.ROUND):  # a review round changes the code too
            agent, model = self.execute_agent or agent, self.execute_model or model
        if agent is not None:
            update["agent"] = agent
        if model is not None:
            update |= {"claude_model": model, "agent_model": model}
        if self.max_budget_usd is not None:
            update["max_budget_usd"] = self.max_budget_usd
        if self.timeout is not None:
            update |= {"planning_timeout": self.timeout, "execution_timeout": self.timeout}
        if self.allowed_tools is not None:
            update["claude_allowed_tools"] = ",".join(self.allowed_tools)
        if self.network_allow:
            listed = (settings.egress_allow.strip(), *self.network_allow)
            update["egress_allow"] = ",".join(entry for entry in listed if entry)
        return settings.model_copy(update=update) if update else settings

    def denied(self, paths: Iterable[str]) -> list[str]:
        """The paths (sorted) that match a ``paths_denied`` glob, or a CI definition's."""
        listed = [*self.paths_denied, *(() if self.allow_ci_changes else CI_DEFINITIONS)]
        globs = [glob_regex(g) for g in listed]
        return sorted(p for p in set(paths) if any(g.match(p) for g in globs))

    def refusal(self, paths: Iterable[str], repository: str) -> str | None:
        """Why a change to ``paths`` may not be pushed (denied paths); None when it may."""
        denied = self.denied(paths)
        if not denied:
            return None
        ci = [glob_regex(g) for g in CI_DEFINITIONS]
        why = f"paths_denied of {repository}"
        if not self.allow_ci_changes and any(g.match(p) for p in denied for g in ci):
            why += "; CI definitions need allow_ci_changes = true"
        return f"changes outside the policy: {', '.join(denied)} ({why})"

    def may_review(self, names: Iterable[str], approvers: Iterable[str]) -> bool:
        """Whether one of ``names`` is in ``reviewers`` or ``approvers`` (without case)."""
        allowed = {a.strip().lower() for a in (*self.reviewers, *approvers) if a.strip()}
        return any(name.lower() in allowed for name in names)

    def secrets_allowed(self, path: str) -> bool:
        """Whether an ``allow_secrets_in`` glob exempts ``path`` from the secret scan."""
        return any(glob_regex(g).match(path) for g in self.allow_secrets_in)


@dataclass(frozen=True, slots=True)
class PolicyBook:
    """Every repository's policy as loaded from one version of the file."""

    default: Policy = field(default_factory=Policy)
    repos: Mapping[str, Policy] = field(default_factory=dict)
    file: str | None = None
    loaded_at: str | None = None

    def effective(self, repo: str) -> Policy:
        """The repository's policy (its table over the default), or the default."""
        return self.repos.get(repo.lower(), self.default)

    def view(self) -> dict[str, Any]:
        """What ``GET /policies`` shows."""
        return {
            "default": self.default.model_dump(mode="json"),
            "repos": {name: p.model_dump(mode="json") for name, p in self.repos.items()},
            "file": self.file,
            "loaded_at": self.loaded_at,
        }


def parse_policies(text: str, file: str) -> PolicyBook:
    """Validate the file's text; :class:`PolicyError` names the file, table and key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _error(file, f"invalid TOML: {exc}") from None
    for key in data:
        if key not in _TABLES:
            raise _error(file, f'unknown table [{key}] (expected [default] and [repo."o/n"])')
    default = _policy(data.get("default", {}), file, "[default]")
    repos_raw = data.get("repo", {})
    if not isinstance(repos_raw, dict):
        raise _error(file, 'repo: must be tables like [repo."owner/name"]')
    repos: dict[str, Policy] = {}
    for name, table in repos_raw.items():
        where = f'[repo."{name}"]'
        if not _REPO_NAME.match(name):
            raise _error(file, f"{where}: the repository must be owner/name")
        repos[name.lower()] = _policy(table, file, where).over(default)
    return PolicyBook(default=default, repos=repos, file=file, loaded_at=utc_iso())


def _policy(table: object, file: str, where: str) -> Policy:
    if not isinstance(table, dict):
        raise _error(file, f"{where}: must be a table")
    given = table.get("instructions_file")
    if isinstance(given, str) and given and not Path(given).is_absolute():
        # As written in the file: relative to the file, not to the worker's directory.
        table = table | {"instructions_file": str(Path(file).parent / given)}
    try:
        return Policy.model_validate(table)
    except ValidationError as exc:
        item = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in item["loc"]) or "(table)"
        message = item["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        given = item.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
        raise _error(file, f"{where} {key}: {message}{shown}") from None


def _error(file: str, problem: str) -> PolicyError:
    return PolicyError(f"{SETTING}: {file}: {problem}")


class Policies:
    """The policy file, read again on use when it changed; the last good version on errors."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._book = PolicyBook() if path is None else self._read()

    @classmethod
    def from_settings(cls, settings: Settings) -> Policies:
        """The file ``HOOKAGENT_POLICY_FILE`` names (defaults only when unset)."""
        return cls(settings.policy_file)

    def current(self) -> PolicyBook:
        """The policies in force, reloaded first if the file changed since the last read."""
        if self._path is None:
            return self._book
        try:
            changed = _stamp(self._path) != self._stamp
        except OSError as exc:
            log.error("%s: %s: cannot read (%s); keeping the last good policy", SETTING,
                      self._path, exc.strerror)  # fmt: skip
            return self._book
        if changed:
            try:
                self._book = self._read()
            except PolicyError as exc:
                log.error("%s; keeping the policy loaded at %s", exc.message, self._book.loaded_at)
        return self._book

    def effective(self, repo: str) -> Policy:
        """The repository's policy as the file says now."""
        return self.current().effective(repo)

    def _read(self) -> PolicyBook:
        path = self._path
        if path is None:
            return PolicyBook()
        try:
            # The stamp is taken before reading: a write racing the read shows as a change.
            stamp = _stamp(path)
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            self._stamp = None
            raise _error(str(path), f"cannot read: {reason}") from None
        self._stamp = stamp
        return parse_policies(text, str(path))


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def load_policies(settings: Settings) -> Policies:
    """The policies, checked now: an invalid file raises :class:`PolicyError` (exit 2)."""
    return Policies.from_settings(settings)


# What a forge's CI runs from the pushed branch itself, with the repository's CI secrets:
# GitHub Actions (workflows and the local actions they use), GitLab CI, CircleCI, Jenkins,
# Buildkite, Azure Pipelines, Travis, Bitbucket, Drone, Woodpecker, Cloud Build. A name
# without a directory matches in any directory, as a CI may be pointed at one there.
CI_DEFINITIONS = (
    ".github/workflows/**",
    ".github/actions/**",
    ".gitlab-ci.yml",
    ".gitlab/ci/**",
    ".circleci/**",
    "Jenkinsfile",
    ".buildkite/**",
    "azure-pipelines.yml",
    ".travis.yml",
    "bitbucket-pipelines.yml",
    ".drone.yml",
    ".woodpecker/**",
    ".woodpecker.yml",
    "cloudbuild.yaml",
)


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A ``paths_denied`` (or ``allow_secrets_in``) glob as a regex over repository paths.

    ``*`` and ``?`` stay within one path segment, ``**`` spans any number of them, and a
    pattern without a ``/`` matches a file's name in any directory (as in ``.gitignore``).
    """
    pattern = pattern.strip().lstrip("/")
    anywhere = "/" not in pattern
    parts = pattern.split("/")
    out = ["(?:.*/)?"] if anywhere else []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(_segment(part) + ("" if last else "/"))
    return re.compile("".join(out) + r"\Z")


def _segment(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := part.find("]", i + 2)) != -1:
            inner = part[i + 1 : end]
            negate = inner[:1] in ("!", "^")
            body = re.escape(inner[1:] if negate else inner).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


# Paths a plan names: segments joined by ``/`` ending in ``name.ext`` (ext starting with a
# letter, so versions like 1.2 are not files); URLs are removed first.
_URL = re.compile(r"\b\w+://\S+")
_PATH = re.compile(r"(?<![\w/-])((?:[\w.-]+/)*([\w-][\w.-]*)\.[A-Za-z][A-Za-z0-9]{0,9})(?![\w/])")


def plan_files(plan: str) -> frozenset[str]:
    """The distinct file paths a plan names (a heuristic: ``e.g.`` and ``i.e.`` are not files)."""
    found = set()
    for match in _PATH.finditer(_URL.sub(" ", plan)):
        path, stem = match.group(1).removeprefix("./"), match.group(2)
        if "/" in path or len(stem) >= 2:
            found.add(path)
    return frozenset(found)
