"""Task workspaces: clone with git, branch, commit, push, remove when done.

Credentials never sit in a URL that git stores or prints. An http(s) template's userinfo
(``https://user:token@host/{repo}.git``) is taken out of it; the clone is made from the bare
URL, so ``origin`` and ``.git/config`` hold no secret. Git gets the credentials as an
``Authorization`` header scoped to that one host, through its own environment
(``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``) and only for clone and
push: nothing credentialed is written to disk. Every error text is scrubbed of URL
userinfo and of the token itself.

Workspaces live in a 0700 root, one 0700 directory per task, and are removed when the task
ends; :meth:`Workspaces.sweep` removes what a crash or a cancel left behind.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hookagent.errors import WorkspaceError
from hookagent.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_GIT_USER = "x-access-token"
REDACTED = "[REDACTED]"
_TASK_ID = re.compile(r"^task-[0-9]+-[0-9a-f]+$")
# The userinfo of an http(s) URL: everything up to the last "@" before the path.
_HTTP_USERINFO = re.compile(r"^(?P<scheme>https?)://(?P<userinfo>[^/?#]*)@", re.IGNORECASE)
_ANY_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@")

IsLive = Callable[[str], Awaitable[bool]] | AbstractSet[str]


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


def _on_github(url: str, api_url: str) -> bool:
    """Whether ``url`` is on github.com over https, or on the GitHub Enterprise host of the API."""
    parts, api_host = urlsplit(url), (urlsplit(api_url).hostname or "").lower()
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host == "github.com":
        return True
    return parts.scheme in {"http", "https"} and host == api_host != "api.github.com"


def _private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents mode 0700, or tighten it to 0700."""
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)


def _rmtree(path: Path) -> None:
    """Delete ``path`` whatever the agent did to it (a symlink in its place, read-only dirs)."""
    if path.is_symlink():
        path.unlink()
        return
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return  # gone already, or removed concurrently by another sweeper
    except PermissionError:
        # A directory made read-only (Go's module cache does this) cannot be emptied until it
        # is writable again; symlinks are skipped so nothing outside the tree is touched.
        path.chmod(0o700)
        for top, dirs, _ in os.walk(path):
            for name in dirs:
                inner = os.path.join(top, name)
                if not os.path.islink(inner):
                    os.chmod(inner, 0o700)
        shutil.rmtree(path)


def _age(path: Path) -> float:
    """Seconds since ``path`` last changed; infinite when it vanished meanwhile."""
    try:
        return time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")


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


class Workspaces:
    """Clones a task's repository into ``root/<task_id>`` and removes it afterwards."""

    def __init__(
        self,
        root: Path,
        *,
        url_template: str,
        timeout: float,
        token: str | None = None,
        data_dir: Path | None = None,
        forges: Mapping[str, Remote] | None = None,
    ) -> None:
        self._root = root
        # The data dir is made private too: in external-Redis mode nothing else creates it.
        self._private = [d for d in (data_dir, root) if d is not None]
        self._timeout = timeout
        # ``url_template`` is GitHub's (and every non-forge source's); others come by name.
        self._remotes = {"github": Remote.build(url_template, token), **(forges or {})}
        self._secrets = [s for remote in self._remotes.values() for s in remote.secrets]

    @classmethod
    def from_settings(cls, settings: Settings) -> Workspaces:
        """Token: HOOKAGENT_GIT_TOKEN, else the template's password, else GitHub's on GitHub."""
        _, _, password = split_credentials(settings.git_url_template)
        secret = settings.git_token
        if (
            secret is None
            and password is None
            and _on_github(settings.git_url_template, settings.github_api_url)
        ):
            secret = settings.github_token  # it opens the pull requests, so it may push too
        gitlab = settings.gitlab_token
        forges = {
            # GitLab takes any user with a token over https; ``oauth2`` is its documented one.
            "gitlab": Remote.build(
                settings.gitlab_clone_template,
                gitlab.get_secret_value() if gitlab is not None else None,
                user="oauth2",
            )
        }
        return cls(
            settings.workspaces,
            url_template=settings.git_url_template,
            timeout=settings.clone_timeout,
            token=secret.get_secret_value() if secret is not None else None,
            data_dir=settings.data_dir if settings.workspace_dir is None else None,
            forges=forges,
        )

    def path(self, task_id: str) -> Path:
        """Where the task's clone lives."""
        if not _TASK_ID.match(task_id):
            raise WorkspaceError(f"bad task id {task_id!r}")
        return self._root / task_id

    def url(self, repo: str, forge: str = "github") -> str:
        """The credential-free URL a repository is cloned from and pushed to."""
        return self._remote(forge).template.format(repo=repo)

    def _remote(self, forge: str) -> Remote:
        try:
            return self._remotes[forge]
        except KeyError:
            raise WorkspaceError(f"no git remote configured for forge {forge!r}") from None

    async def clone(self, task_id: str, repo: str, forge: str = "github") -> Path:
        """A fresh clone (an earlier attempt's leftovers are removed first)."""
        target = self.path(task_id)
        try:
            await asyncio.to_thread(_rmtree, target)
            for directory in self._private:
                _private_dir(directory)
            target.mkdir(mode=0o700)  # git clones into an empty directory it is given
        except OSError as exc:
            raise WorkspaceError(f"could not prepare workspace {task_id}: {exc}") from None
        await self._git(
            "clone", "--quiet", "--no-tags", "--", self.url(repo, forge), str(target), auth=forge
        )
        return target

    async def remove(self, task_id: str) -> bool:
        """Delete the task's workspace; False (and a warning logged) when the disk refused."""
        try:
            await asyncio.to_thread(_rmtree, self.path(task_id))
        except OSError as exc:
            log.warning("could not remove workspace %s: %s", task_id, exc)
            return False
        return True

    def keep(self, task_id: str) -> None:
        """Start a failed task's keep window now (the sweeper reads the directory's mtime)."""
        path = self.path(task_id)
        if path.is_dir() and not path.is_symlink():
            try:
                os.utime(path)
            except OSError as exc:
                log.warning("could not mark workspace %s as kept: %s", task_id, exc)

    async def sweep(self, is_live: IsLive, keep_failed_s: float) -> list[str]:
        """Remove workspaces of tasks that ended or are gone, once unchanged for ``keep_failed_s``.

        ``is_live`` is a set of live task ids or an async predicate; names that are not task
        ids are left alone. Returns the task ids whose workspaces were removed.
        """
        try:
            entries = sorted(self._root.iterdir())
        except FileNotFoundError:
            return []
        removed: list[str] = []
        for entry in entries:
            task_id = entry.name
            if not _TASK_ID.match(task_id):
                continue
            live = (
                task_id in is_live if isinstance(is_live, AbstractSet) else await is_live(task_id)
            )
            if live or _age(entry) < keep_failed_s:
                continue
            if await self.remove(task_id):
                removed.append(task_id)
        return removed

    async def start_branch(self, path: Path, branch: str) -> str:
        """Create and check out ``branch``; returns the branch it starts from (the default)."""
        base = await self._git_out(path, "rev-parse", "--abbrev-ref", "HEAD")
        await self._git("-C", str(path), "checkout", "--quiet", "-b", branch)
        return base

    async def changed_files(self, path: Path, base: str) -> list[str]:
        """Paths changed since ``base``: staged, committed or new (a rename as both its paths)."""
        await self._git("-C", str(path), "add", "--all")
        out = await self._git("-C", str(path), "diff", "--cached", "--name-only", "--no-renames",
                              "-z", base, "--")  # fmt: skip
        return [name for name in out.split("\0") if name]

    async def commit_all(self, path: Path, message: str, *, name: str, email: str) -> str | None:
        """Commit every change in the clone; the new commit's sha, or None when nothing changed."""
        await self._git("-C", str(path), "add", "--all")
        status = await self._git_out(path, "status", "--porcelain")
        if not status:
            return None
        await self._git(
            "-C", str(path), "-c", f"user.name={name}", "-c", f"user.email={email}",
            "commit", "--quiet", "--no-verify", "-m", message,
        )  # fmt: skip
        return await self._git_out(path, "rev-parse", "HEAD")

    async def push(self, path: Path, branch: str, forge: str = "github") -> None:
        """Push ``branch`` to origin (a rejected push raises with git's reason)."""
        # The agent could have written a pre-push hook; it would run with the credentials.
        await self._git(
            "-C", str(path), "-c", "core.hooksPath=/dev/null",
            "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", auth=forge,
        )  # fmt: skip

    async def _git_out(self, path: Path, *args: str) -> str:
        return (await self._git("-C", str(path), *args)).strip()

    def _env(self, auth: str | None) -> dict[str, str]:
        """git's environment; with ``auth`` (a forge name), that forge's credentials."""
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
        headers = self._remote(auth).auth if auth else {}
        if headers:
            # Appended after any GIT_CONFIG_* entries the operator set, not over them.
            count = env.get("GIT_CONFIG_COUNT", "")
            first = int(count) if count.isdigit() else 0
            for n, (key, value) in enumerate(headers.items(), start=first):
                env[f"GIT_CONFIG_KEY_{n}"] = key
                env[f"GIT_CONFIG_VALUE_{n}"] = value
            env["GIT_CONFIG_COUNT"] = str(first + len(headers))
        return env

    async def _git(self, *args: str, auth: str | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env(auth),
            start_new_session=True,
        )
        verb = next(
            (a for a in args if not a.startswith("-") and "=" not in a and "/" not in a), ""
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
