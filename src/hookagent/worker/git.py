"""hookagent's own git: a hardened runner, and the credentials it authenticates with.

A module of its own because every git process hookagent starts (clone, mirror, spare,
commit, push) must go through the same wall, and that wall is easier to check in one place.
Every git process gets an environment holding only what git needs, no system or global
config, no hooks, no fsmonitor, no pager, no credential helper, no signing, no automatic gc,
and only the remote's own protocol; the push goes to the remote's URL itself, never to a
remote named in a config.

Credentials never sit in a URL that git stores or prints. An http(s) template's userinfo
(``https://user:token@host/{repo}.git``) is taken out of it; the clone is made from the bare
URL, so ``origin`` and ``.git/config`` hold no secret. Git gets the credentials as an
``Authorization`` header scoped to that one host, through its own environment
(``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``) and only for clone and
push: nothing credentialed is written to disk. Every error text is scrubbed of URL
userinfo and of the token itself.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hookagent.errors import WorkspaceError

DEFAULT_GIT_USER = "x-access-token"
REDACTED = "[REDACTED]"
# The userinfo of an http(s) URL: everything up to the last "@" before the path.
_HTTP_USERINFO = re.compile(r"^(?P<scheme>https?)://(?P<userinfo>[^/?#]*)@", re.IGNORECASE)
_ANY_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@")

# What git may see of hookagent's environment: programs, locale, ssh agent and proxies.
_PASSED_ENV = (
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSH_AUTH_SOCK",
    "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "SSL_CERT_FILE",
    "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy",
    "https_proxy", "no_proxy", "all_proxy",
)  # fmt: skip
# Set last, so they win over any config git reads (the private repository's, the operator's
# GIT_CONFIG_* entries): nothing in them can make git run a program or read a user's file.
_HARDENED = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.untrackedCache", "false"),
    ("core.attributesFile", "/dev/null"),
    ("core.excludesFile", "/dev/null"),
    ("core.pager", "cat"),
    ("core.symlinks", "true"),
    ("core.quotePath", "false"),
    ("credential.helper", ""),
    ("commit.gpgSign", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("submodule.recurse", "false"),
    ("push.recurseSubmodules", "no"),
    ("protocol.allow", "never"),
)
_SCP_LIKE = re.compile(r"^[^/:]+:")


def split_credentials(template: str) -> tuple[str, str | None, str | None]:
    """An http(s) template without its userinfo, and the user and password it held."""
    found = _HTTP_USERINFO.match(template)
    if found is None:
        return template, None, None
    user, colon, password = found["userinfo"].partition(":")
    bare = f"{found['scheme']}://{template[found.end() :]}"
    return bare, unquote(user) or None, (unquote(password) or None) if colon else None


def _scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL userinfo and every literal secret replaced by ``[REDACTED]``."""
    text = _ANY_USERINFO.sub(rf"\1{REDACTED}@", text)
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def on_github(url: str, api_url: str) -> bool:
    """Whether ``url`` is on github.com over https, or on the GitHub Enterprise host of the API."""
    parts, api_host = urlsplit(url), (urlsplit(api_url).hostname or "").lower()
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host == "github.com":
        return True
    return parts.scheme in {"http", "https"} and host == api_host != "api.github.com"


@dataclass(frozen=True, slots=True)
class Remote:
    """Where one forge's repositories are cloned from, and the header git authenticates with."""

    template: str
    auth: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    @classmethod
    def build(cls, url_template: str, token: str | None, *, user: str | None = None) -> Remote:
        """The template without its userinfo; ``token`` (else the template's password) as auth."""
        template, found_user, password = split_credentials(url_template)
        secret = token or password
        secrets = [s for s in (token, password) if s]
        origin = re.match(r"(?i)^https?://[^/?#]+", template)
        if not secret or origin is None:
            return cls(template, {}, tuple(secrets))
        basic = f"{found_user or user or DEFAULT_GIT_USER}:{secret}".encode()
        header = base64.b64encode(basic).decode()
        # Scoped to the one host: a redirect or a rewritten remote gets nothing.
        auth = {f"http.{origin[0]}/.extraHeader": f"Authorization: Basic {header}"}
        return cls(template, auth, (*secrets, header))


def _scheme(url: str) -> str:
    """The transport git uses for ``url``: its scheme, ssh when scp-like, file for a path."""
    if "::" in url.split("/", 1)[0]:
        return url.split("::", 1)[0].lower()  # a remote helper (``ext::``) names its own
    if "://" in url:
        return url.split("://", 1)[0].lower()
    return "ssh" if _SCP_LIKE.match(url) else "file"


class HardenedGit:
    """Runs git with the hardened environment; credentials only for the forge it is told."""

    def __init__(self, remotes: Mapping[str, Remote], *, timeout: float) -> None:
        self._remotes = dict(remotes)
        self._timeout = timeout
        self._secrets = [s for remote in self._remotes.values() for s in remote.secrets]

    def remote(self, forge: str) -> Remote:
        """The remote configured for ``forge``; WorkspaceError when there is none."""
        try:
            return self._remotes[forge]
        except KeyError:
            raise WorkspaceError(f"no git remote configured for forge {forge!r}") from None

    async def bare(self, private: Path, *args: str) -> str:
        """git on the private directory alone (no work tree); its output stripped."""
        return (await self("--git-dir", str(private), *args)).strip()

    def env(self, auth: str | None, url: str | None) -> dict[str, str]:
        """git's environment: the hardened config; with ``auth`` (a forge), its credentials."""
        env = {name: os.environ[name] for name in _PASSED_ENV if name in os.environ}
        env |= {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "true",
            "GIT_PAGER": "cat",
            "GIT_OPTIONAL_LOCKS": "0",
        }
        entries: list[tuple[str, str]] = []
        # The operator's own GIT_CONFIG_* entries (hookagent's environment) come first.
        count = os.environ.get("GIT_CONFIG_COUNT", "")
        for n in range(int(count) if count.isdigit() else 0):
            key, value = (
                os.environ.get(f"GIT_CONFIG_KEY_{n}"),
                os.environ.get(f"GIT_CONFIG_VALUE_{n}"),
            )
            if key is not None and value is not None:
                entries.append((key, value))
        entries += list(self.remote(auth).auth.items()) if auth else []
        entries += _HARDENED
        if url is not None:
            entries.append((f"protocol.{_scheme(url)}.allow", "always"))
        for n, (key, value) in enumerate(entries):
            env[f"GIT_CONFIG_KEY_{n}"] = key
            env[f"GIT_CONFIG_VALUE_{n}"] = value
        env["GIT_CONFIG_COUNT"] = str(len(entries))
        return env

    async def __call__(self, *args: str, auth: str | None = None, url: str | None = None) -> str:
        """Run git with ``args``, ``auth`` naming the forge whose credentials it gets; stdout."""
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(auth, url),
            start_new_session=True,
        )
        verb = next(
            (a for a in _verbs(args) if not a.startswith("-") and "=" not in a and "/" not in a), ""
        )
        try:
            async with asyncio.timeout(self._timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise WorkspaceError(f"git {verb} timed out after {self._timeout:.0f}s") from None
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            detail = _scrub(err.decode("utf-8", errors="replace"), self._secrets).strip()
            raise WorkspaceError(f"git {verb} failed (exit {proc.returncode}): {detail[-2000:]}")
        return out.decode("utf-8", errors="replace")


def _verbs(args: tuple[str, ...]) -> list[str]:
    """``args`` without the values of ``--git-dir``, ``--work-tree`` and ``-c`` (for messages)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in {"--git-dir", "--work-tree", "-c", "-C"}:
            skip = True
        else:
            out.append(arg)
    return out
