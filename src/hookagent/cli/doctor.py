"""``hookagent doctor``: checks of this machine's setup, each saying what to fix.

The checks read the settings, files and PATH, run a few ``--version`` commands with a
timeout and PING Redis. They import neither the API nor the service, start nothing and
create nothing; the CLI prints what they return. No check ever reports a secret's value.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import SecretStr, ValidationError

from hookagent.cli.embedded import find_valkey
from hookagent.errors import EmbeddedStoreError
from hookagent.settings import Settings, describe_errors, get_settings, split_list
from hookagent.store import Readiness, Store, connect
from hookagent.store.auth import open_to_anyone
from hookagent.worker.sandbox import probe

# An agent CLI's `--version` answers in a second or two; a hung one must not hang doctor.
VERSION_TIMEOUT_S = 10.0
REDIS_TIMEOUT_S = 5.0
WEBHOOK_SECRETS = (
    ("sentry", "sentry_client_secret"),
    ("jira", "jira_webhook_secret"),
    ("github", "github_webhook_secret"),
    ("gitlab", "gitlab_webhook_secret"),
    ("linear", "linear_webhook_secret"),
)
_AGENT_BINS = {"claude": "claude_bin", "codex": "codex_bin", "gemini": "gemini_bin"}


class Level(StrEnum):
    """How a check went: fine, worth a look, or broken (a failure makes doctor exit 1)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome: what was checked, how it went, and what to do about it."""

    check: str
    level: Level
    message: str


def run() -> list[Finding]:
    """Every check, on the settings the environment gives (or why they are refused)."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        return [Finding("settings", Level.FAIL, line) for line in describe_errors(exc)]
    return [Finding("settings", Level.OK, "HOOKAGENT_* settings are valid"), *diagnose(settings)]


def diagnose(settings: Settings) -> list[Finding]:
    """Every check on ``settings``, in the order they are printed."""
    return [
        *check_redis(settings),
        check_agent(settings),
        check_git(),
        check_sandbox(settings),
        check_network(settings),
        *check_api_tokens(settings),
        check_private_dir("data dir", settings.data_dir, "HOOKAGENT_DATA_DIR"),
        check_private_dir("workspaces", settings.workspaces, "HOOKAGENT_WORKSPACE_DIR"),
        *check_webhook_secrets(settings),
    ]


def exit_code(findings: list[Finding]) -> int:
    """0 when no check failed, else 1."""
    return 1 if any(f.level is Level.FAIL for f in findings) else 0


def check_redis(settings: Settings) -> list[Finding]:
    """The configured Redis answers (and has live workers), or the embedded Valkey is there."""
    if not settings.redis_url:
        try:
            binary = find_valkey()
        except EmbeddedStoreError as exc:
            return [Finding("redis", Level.FAIL, exc.message)]
        version, error = program_version(binary)
        shown = version or f"--version failed: {error}"
        text = f"HOOKAGENT_REDIS_URL unset: `hookagent up` starts the embedded {binary} ({shown})"
        return [Finding("redis", Level.OK if version else Level.FAIL, text)]
    url = redact_url(settings.redis_url)
    try:
        ready = asyncio.run(_readiness(settings))
    except ValueError:
        text = "HOOKAGENT_REDIS_URL is not a Redis URL (redis://, rediss:// or unix://)"
        return [Finding("redis", Level.FAIL, text)]
    if ready.redis_error is not None:
        text = f"{url} {ready.redis_error}: check that it runs and HOOKAGENT_REDIS_URL is right"
        return [Finding("redis", Level.FAIL, text)]
    age = settings.ready_worker_age
    if ready.live_workers:
        workers = Finding(
            "workers", Level.OK, f"{ready.live_workers} sent a heartbeat within {age:g}s"
        )
    else:
        workers = Finding(
            "workers",
            Level.WARN,
            f"no worker heartbeat within {age:g}s: start `hookagent worker` or `hookagent up` "
            "(/readyz answers 503 until one runs)",
        )
    mode = " (Redis Cluster: HOOKAGENT_REDIS_CLUSTER)" if settings.redis_cluster else ""
    answered = Finding("redis", Level.OK, f"{url} answers PING{mode}")
    return [answered, check_redis_auth(settings.redis_url), workers]


def check_redis_auth(url: str) -> Finding:
    """Whether the configured Redis refuses a client without credentials (NOAUTH)."""
    shown = redact_url(url)
    if url.startswith("unix://"):
        text = f"{shown} is a unix socket: only who can open its file reaches it"
        return Finding("redis auth", Level.OK, text)
    anyone = asyncio.run(open_to_anyone(url, timeout=REDIS_TIMEOUT_S))
    if anyone is False:
        return Finding("redis auth", Level.OK, f"{shown} refuses clients without its password")
    if anyone is None:
        text = f"{shown} did not answer a client without credentials: could not tell"
        return Finding("redis auth", Level.WARN, text)
    text = (
        f"{shown} answers without a password: anyone who reaches it reads and rewrites every "
        "task; set requirepass (deploy/ does) and put the password in HOOKAGENT_REDIS_URL "
        "(redis://:PASSWORD@host:6379/0)"
    )
    return Finding("redis auth", Level.WARN, text)


async def _readiness(settings: Settings) -> Readiness:
    redis = connect(str(settings.redis_url), cluster=settings.redis_cluster)
    try:
        store = Store.build(redis, settings)
        return await store.workers.readiness(settings.ready_worker_age, timeout=REDIS_TIMEOUT_S)
    finally:
        await redis.aclose()


def check_agent(settings: Settings) -> Finding:
    """The agent CLI ``HOOKAGENT_AGENT`` names is on PATH and tells its version."""
    if settings.agent == "command":
        # Only the program is named: the rest of the command line may carry a token.
        program = settings.agent_argv[0]
        found = shutil.which(program)
        if found is None:
            text = f"{program!r} (HOOKAGENT_AGENT_COMMAND) is not found or not executable"
            return Finding("agent", Level.FAIL, text)
        # Not run: a command agent reads a prompt on stdin and may do anything with it.
        return Finding("agent", Level.OK, f"command agent {found}")
    field = _AGENT_BINS[settings.agent]
    variable = f"HOOKAGENT_{field.upper()}"
    binary: str = getattr(settings, field)
    found = shutil.which(binary)
    if found is None:
        text = (
            f"{variable}={binary} is not found or not executable: install the {settings.agent} "
            f"CLI or point {variable} at it"
        )
        return Finding("agent", Level.FAIL, text)
    version, error = program_version(found)
    if version is None:
        return Finding("agent", Level.FAIL, f"{found} --version failed: {error}")
    return Finding("agent", Level.OK, f"{settings.agent} {found} ({version})")


def check_git() -> Finding:
    """git is on PATH and runs."""
    found = shutil.which("git")
    if found is None:
        return Finding("git", Level.FAIL, "not found on PATH: install git (workers clone with it)")
    version, error = program_version(found)
    if version is None:
        return Finding("git", Level.FAIL, f"{found} --version failed: {error}")
    return Finding("git", Level.OK, f"{found} ({version})")


def check_sandbox(settings: Settings) -> Finding:
    """Whether bubblewrap can sandbox the agent here, judged against ``HOOKAGENT_SANDBOX``."""
    reason = probe()
    if settings.sandbox == "bwrap":
        if reason is None:
            return Finding("sandbox", Level.OK, "HOOKAGENT_SANDBOX=bwrap and bwrap works here")
        text = (
            f"HOOKAGENT_SANDBOX=bwrap but {reason}: every task would fail; install bubblewrap "
            "and allow unprivileged user namespaces, or set HOOKAGENT_SANDBOX=none"
        )
        return Finding("sandbox", Level.FAIL, text)
    if reason is None:
        text = "agents run unsandboxed; bwrap works here: set HOOKAGENT_SANDBOX=bwrap"
    else:
        text = f"agents run unsandboxed, and HOOKAGENT_SANDBOX=bwrap would not work: {reason}"
    return Finding("sandbox", Level.WARN, text)


def check_network(settings: Settings) -> Finding:
    """What the agent's network is, judged against ``HOOKAGENT_SANDBOX_NETWORK``."""
    if settings.sandbox != "bwrap":
        # The allowlist is a network namespace of bwrap's: without bwrap there is none.
        text = (
            "the agent uses this host's network: HOOKAGENT_SANDBOX_NETWORK applies only "
            "with HOOKAGENT_SANDBOX=bwrap"
        )
        return Finding("network", Level.WARN, text)
    if settings.sandbox_network == "host":
        text = (
            "HOOKAGENT_SANDBOX_NETWORK=host: the agent shares this host's network and reaches "
            "Redis, the API and cloud metadata like the worker (unsafe); use allowlist"
        )
        return Finding("network", Level.WARN, text)
    reason = probe(network=True)
    if reason is not None:
        text = (
            f"HOOKAGENT_SANDBOX_NETWORK=allowlist but {reason}: every task would fail; allow "
            "unprivileged network namespaces, or set HOOKAGENT_SANDBOX_NETWORK=host (unsafe)"
        )
        return Finding("network", Level.FAIL, text)
    entries = len(split_list(settings.egress_allow))
    text = (
        f"allowlist: the agent reaches its model endpoint and {entries} "
        "HOOKAGENT_EGRESS_ALLOW entries (plus policies' network_allow) through a per-task proxy"
    )
    return Finding("network", Level.OK, text)


def check_api_tokens(settings: Settings) -> list[Finding]:
    """Whether API tokens are configured (counted, never shown)."""
    if "api_tokens" not in type(settings).model_fields:
        text = "this version has no API authentication: keep the API on a private network"
        return [Finding("api tokens", Level.WARN, text)]
    count = count_tokens(getattr(settings, "api_tokens", None))
    if count == 0:
        text = "none configured (HOOKAGENT_API_TOKENS): anyone who reaches the API can use it"
        return [Finding("api tokens", Level.WARN, text)]
    return [Finding("api tokens", Level.OK, f"{count} configured")]


def count_tokens(value: object) -> int:
    """How many tokens a setting holds: a comma-separated string (or secret) or a collection."""
    if value is None:
        return 0
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        return len([t for t in value.split(",") if t.strip()])
    if isinstance(value, Collection):
        return len(value)
    return 1


def check_private_dir(label: str, path: Path, variable: str) -> Finding:
    """``path`` is (or can become) a directory only this user can read: mode 0700."""
    if not path.exists():
        parent = next((p for p in path.absolute().parents if p.exists()), Path("/"))
        if os.access(parent, os.W_OK | os.X_OK):
            text = f"{path} does not exist yet; it is created (mode 0700) on first use"
            return Finding(label, Level.OK, text)
        text = f"{path} does not exist and {parent} is not writable: create it or set {variable}"
        return Finding(label, Level.FAIL, text)
    if not path.is_dir():
        return Finding(label, Level.FAIL, f"{path} is not a directory: fix {variable}")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        text = f"{path} is not writable by this user (uid {os.getuid()}): fix its owner"
        return Finding(label, Level.FAIL, text)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        text = (
            f"{path} has mode {mode:04o}; other users may read tasks, logs and code in it: "
            f"chmod 700 {path}"
        )
        return Finding(label, Level.WARN, text)
    return Finding(label, Level.OK, f"{path} (mode 0700)")


def check_webhook_secrets(settings: Settings) -> list[Finding]:
    """One line per source: its signing secret is set or not (never its value)."""
    findings = []
    for source, field in WEBHOOK_SECRETS:
        variable = f"HOOKAGENT_{field.upper()}"
        if getattr(settings, field) is not None:
            findings.append(Finding(f"{source} webhooks", Level.OK, f"{variable} is set"))
            continue
        text = (
            f"{variable} unset: /webhooks/{source} accepts unsigned deliveries from anyone "
            "who reaches it"
        )
        findings.append(Finding(f"{source} webhooks", Level.WARN, text))
    return findings


def program_version(binary: str) -> tuple[str | None, str | None]:
    """``binary --version``'s first line, or (None, why it failed); never waits forever."""
    try:
        done = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            timeout=VERSION_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None, f"no answer within {VERSION_TIMEOUT_S:g}s"
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode != 0:
        return None, f"exit code {done.returncode}" + (f": {lines[0][:200]}" if lines else "")
    return (lines[0][:200] if lines else "no version printed"), None


def redact_url(url: str) -> str:
    """``url`` with any password (``user:pass@`` or ``?password=``) replaced by ``***``."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}" if ":" in userinfo else parts.netloc
    pairs = [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)]
    query = f"?{urlencode(pairs, safe='*')}" if pairs else ""
    # Put together by hand: urlunsplit would turn ``unix:///path`` into ``unix:/path``.
    return f"{parts.scheme}://{netloc}{parts.path}{query}"
