"""Task workspaces: clone with git, branch, commit, push, remove when done.

hookagent's git never reads anything the agent could have written. Each task has a private
git directory, ``<git root>/<task_id>.git`` beside (never inside) the workspaces: cloned
bare from the remote, it checks the files out into the workspace and later commits the
workspace's files and pushes them. The agent gets a ``.git`` of its own, a copy it may wreck
at will; hookagent never runs git on it (``--git-dir`` always names the private one, and
git never treats a work tree's ``.git`` as content). Every git process gets an environment
holding only what git needs, no system or global config, no hooks, no fsmonitor, no pager,
no credential helper, no signing, no automatic gc, and only the remote's own protocol; the
push goes to the remote's URL itself, never to a remote named in a config.

Credentials never sit in a URL that git stores or prints. An http(s) template's userinfo
(``https://user:token@host/{repo}.git``) is taken out of it; the clone is made from the bare
URL, so ``origin`` and ``.git/config`` hold no secret. Git gets the credentials as an
``Authorization`` header scoped to that one host, through its own environment
(``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``) and only for clone and
push: nothing credentialed is written to disk. Every error text is scrubbed of URL
userinfo and of the token itself.

Workspaces and git directories live in 0700 roots, and are removed when the task ends;
:meth:`Workspaces.sweep` removes what a crash or a cancel left behind.
"""

from __future__ import annotations

import asyncio
import base64
import json
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
from hookagent.worker.files import private_dir, remove_tree
from hookagent.worker.mirror import Mirrors, clone_mirror
from hookagent.worker.spare import Spares

log = logging.getLogger(__name__)

DEFAULT_GIT_USER = "x-access-token"
REDACTED = "[REDACTED]"
TASK_ID = re.compile(r"^task-[0-9]+-[0-9a-f]+$")
# The userinfo of an http(s) URL: everything up to the last "@" before the path.
_HTTP_USERINFO = re.compile(r"^(?P<scheme>https?)://(?P<userinfo>[^/?#]*)@", re.IGNORECASE)
_ANY_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@")

IsLive = Callable[[str], Awaitable[bool]] | AbstractSet[str]

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
# A ref a review may fetch: plain ref path segments, nothing a refspec or option could read.
_REF = re.compile(r"^refs/[A-Za-z0-9._/-]+$")
# Where a review's fetched head and base are kept in the private git directory.
_REVIEW_HEAD = "refs/hookagent/review-head"
_REVIEW_BASE = "refs/hookagent/review-base"
# A spare nobody took for this long (no task on its repository) is removed by the sweep.
SPARE_IDLE_S = 3 * 24 * 3600
# A removed workspace or git directory waits for deletion under this prefix, in its root.
_TRASH = ".removed-"
_TRASH_AGE_S = 600.0


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


def _scheme(url: str) -> str:
    """The transport git uses for ``url``: its scheme, ssh when scp-like, file for a path."""
    if "::" in url.split("/", 1)[0]:
        return url.split("::", 1)[0].lower()  # a remote helper (``ext::``) names its own
    if "://" in url:
        return url.split("://", 1)[0].lower()
    return "ssh" if _SCP_LIKE.match(url) else "file"


def _nested_repositories(work_tree: Path) -> list[str]:
    """Directories below ``work_tree`` holding a ``.git``: left out of commits, never read."""
    found: list[str] = []
    for top, dirs, files in os.walk(work_tree):
        if top != str(work_tree) and (".git" in dirs or ".git" in files):
            found.append(os.path.relpath(top, work_tree))
            dirs.clear()
            continue
        dirs[:] = [d for d in dirs if d != ".git"]  # os.walk follows no symlink either
    return sorted(found)


def _agent_config(url: str) -> str:
    """The ``.git/config`` of the agent's own copy: a plain clone of ``url``."""
    quoted = json.dumps(url, ensure_ascii=False)  # git quotes \\ and \" as JSON does
    return (
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
        f'[remote "origin"]\n\turl = {quoted}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n'
    )


class Workspaces:
    """Checks a task's repository out into ``root/<task_id>``, publishes it, removes it."""

    def __init__(
        self,
        root: Path,
        *,
        url_template: str,
        timeout: float,
        token: str | None = None,
        data_dir: Path | None = None,
        forges: Mapping[str, Remote] | None = None,
        git_root: Path | None = None,
        mirrors: Mirrors | None = None,
        spares: Spares | None = None,
    ) -> None:
        self._root = root
        # Beside the workspaces, never inside: the sandbox binds a workspace and nothing else.
        self._gits = git_root or root.parent / "git"
        # The data dir is made private too: in external-Redis mode nothing else creates it.
        self._private = [d for d in (data_dir, root, self._gits) if d is not None]
        self._timeout = timeout
        # ``url_template`` is GitHub's (and every non-forge source's); others come by name.
        self._remotes = {"github": Remote.build(url_template, token), **(forges or {})}
        self._secrets = [s for remote in self._remotes.values() for s in remote.secrets]
        # None: every clone straight from the remote (no mirror kept).
        self._mirrors = mirrors
        # None: no spare checkouts (each task checks every file out); needs the mirrors.
        self.spares = spares if mirrors is not None else None
        # Deletions of removed workspaces, run off the task's path (see :meth:`remove`).
        self._deleting: set[asyncio.Task[None]] = set()

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
            git_root=settings.data_dir / "git",
            mirrors=Mirrors(settings.data_dir / "mirrors"),
            spares=Spares(settings.data_dir / "spares"),
        )

    def path(self, task_id: str) -> Path:
        """Where the task's clone lives."""
        if not TASK_ID.match(task_id):
            raise WorkspaceError(f"bad task id {task_id!r}")
        return self._root / task_id

    def git_dir(self, task_id: str) -> Path:
        """hookagent's private git directory of the task: outside every workspace."""
        return self._gits / f"{self.path(task_id).name}.git"

    def url(self, repo: str, forge: str = "github") -> str:
        """The credential-free URL a repository is cloned from and pushed to."""
        return self._remote(forge).template.format(repo=repo)

    def _remote(self, forge: str) -> Remote:
        try:
            return self._remotes[forge]
        except KeyError:
            raise WorkspaceError(f"no git remote configured for forge {forge!r}") from None

    async def clone(self, task_id: str, repo: str, forge: str = "github") -> Path:
        """A fresh checkout (an earlier attempt's leftovers are removed first).

        The workspace holds the files only; :meth:`hand_over` gives the agent its ``.git``.
        """
        target, private = self.path(task_id), self.git_dir(task_id)
        try:
            await asyncio.to_thread(remove_tree, target)
            await asyncio.to_thread(remove_tree, private)
            for directory in self._private:
                private_dir(directory)
            target.mkdir(mode=0o700)
        except OSError as exc:
            raise WorkspaceError(f"could not prepare workspace {task_id}: {exc}") from None
        url = self.url(repo, forge)
        if self._mirrors is None:
            await self._git(
                "clone", "--quiet", "--bare", "--single-branch", "--no-tags", "--template=",
                "--", url, str(private), auth=forge, url=url,
            )  # fmt: skip
        elif await self._from_spare(task_id, repo, forge, url):
            self._prepare_spare(url, repo, forge)
            return target  # checked out already
        else:
            async with self._mirrors.updated(self._git, url, repo, forge) as mirror:
                await clone_mirror(self._git, mirror, private, url)
        await self._git(*self._tree(target), "checkout", "--quiet", "--force")
        self._prepare_spare(url, repo, forge)
        return target

    def _prepare_spare(self, url: str, repo: str, forge: str) -> None:
        """Start the next spare's preparation in the background (when there are spares)."""
        if self.spares is not None and self._mirrors is not None and self._one_disk(self.spares):
            self.spares.prepare(self._git, self._mirrors, url=url, repo=repo, forge=forge)

    def _one_disk(self, spares: Spares) -> bool:
        """Whether spares, workspaces and git directories share a disk (a spare is renamed)."""
        try:
            private_dir(spares.root)
            return len({p.stat().st_dev for p in (spares.root, self._root, self._gits)}) == 1
        except OSError:
            return False

    async def _from_spare(self, task_id: str, repo: str, forge: str, url: str) -> bool:
        """Check the task out from the repository's spare; False: the task clones instead."""
        if self.spares is None or self._mirrors is None:
            return False
        target, private = self.path(task_id), self.git_dir(task_id)
        if await self.spares.check_out(
            self._git, self._mirrors, url=url, repo=repo, forge=forge, into=(target, private)
        ):
            return True
        try:  # what the spare left in the task's paths
            await asyncio.to_thread(remove_tree, target)
            await asyncio.to_thread(remove_tree, private)
            target.mkdir(mode=0o700)
        except OSError as exc:
            raise WorkspaceError(f"could not prepare workspace {task_id}: {exc}") from None
        return False

    async def hand_over(self, path: Path) -> None:
        """Give the agent a ``.git`` of its own: a copy of the private one, never read back."""
        private, copy = self._git_dir_of(path), path / ".git"
        url = await self._bare(private, "config", "remote.origin.url")
        heads = await self._bare(
            private, "for-each-ref", "--format=%(objectname) %(refname:short)", "refs/heads"
        )
        current = await self._bare(private, "symbolic-ref", "--short", "HEAD")
        # What the remote has: the task's own branch is not there yet (unless it is all).
        branches = [line.split(" ", 1) for line in heads.splitlines() if " " in line]
        tracked = [b for b in branches if b[1] != current] or branches

        def copy_tree() -> None:
            remove_tree(copy)
            # A copy, not hard links: the agent could write into a shared object file.
            shutil.copytree(private, copy, symlinks=True)
            (copy / "config").write_text(_agent_config(url))
            for sha, name in tracked:
                ref = copy / "refs" / "remotes" / "origin" / name
                ref.parent.mkdir(parents=True, exist_ok=True)
                ref.write_text(f"{sha}\n")

        try:
            await asyncio.to_thread(copy_tree)
        except OSError as exc:
            raise WorkspaceError(f"could not give the agent its .git: {exc}") from None

    def kept(self, task_id: str) -> bool:
        """Whether the task's workspace and git directory are still on this host."""
        return all(
            path.is_dir() and not path.is_symlink()
            for path in (self.path(task_id), self.git_dir(task_id))
        )

    async def remove(self, task_id: str) -> bool:
        """Delete the task's workspace and git directory; False (warning logged) on refusal.

        Both are renamed away at once and deleted in the background: deleting 10,000 files
        is no part of the task's path, nor of the next task's.
        """
        trashed: list[Path] = []
        try:
            for path in (self.path(task_id), self.git_dir(task_id)):
                trashed += await asyncio.to_thread(_trash, path)
        except OSError as exc:
            log.warning("could not remove workspace %s: %s", task_id, exc)
            return False
        if trashed:
            deleting = asyncio.create_task(self._delete(trashed))
            self._deleting.add(deleting)
            deleting.add_done_callback(self._deleting.discard)
        return True

    async def _delete(self, paths: list[Path]) -> None:
        for path in paths:
            try:
                await asyncio.to_thread(remove_tree, path)
            except OSError as exc:
                log.warning("could not delete %s (the sweep retries): %s", path.name, exc)

    async def settled(self) -> None:
        """Wait until removed workspaces are deleted and spares prepared (benchmarks, tests)."""
        while self._deleting:
            await asyncio.wait(set(self._deleting))
        if self.spares is not None:
            await self.spares.settled()

    async def aclose(self) -> None:
        """Finish deleting removed workspaces; cancel spare preparations under way."""
        if self.spares is not None:
            await self.spares.aclose()
        while self._deleting:
            await asyncio.wait(set(self._deleting))

    def keep(self, task_id: str) -> None:
        """Start a failed task's keep window now (the sweeper reads the directory's mtime)."""
        for path in (self.path(task_id), self.git_dir(task_id)):
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
        entries: dict[str, Path] = {}
        for root, suffix in ((self._gits, ".git"), (self._root, "")):
            try:
                found = list(root.iterdir())
            except FileNotFoundError:
                continue
            for entry in found:
                name = entry.name.removesuffix(suffix) if suffix else entry.name
                if TASK_ID.match(name) and (suffix == "" or entry.name.endswith(suffix)):
                    entries[name] = entry  # the workspace's age counts when both exist
        for root in (self._root, self._gits):
            await asyncio.to_thread(_empty_trash, root)
        if self.spares is not None:
            await asyncio.to_thread(self.spares.remove_idle, SPARE_IDLE_S)
        removed: list[str] = []
        for task_id, entry in sorted(entries.items()):
            live = (
                task_id in is_live if isinstance(is_live, AbstractSet) else await is_live(task_id)
            )
            if live or _age(entry) < keep_failed_s:
                continue
            try:
                for path in (self.path(task_id), self.git_dir(task_id)):
                    await asyncio.to_thread(remove_tree, path)
            except OSError as exc:
                log.warning("could not remove workspace %s: %s", task_id, exc)
                continue
            removed.append(task_id)
        return removed

    async def start_branch(self, path: Path, branch: str) -> str:
        """Create and check out ``branch``; returns the branch it starts from (the default)."""
        git = self._tree(path)
        base = (await self._git(*git, "symbolic-ref", "--short", "HEAD")).strip()
        await self._git(*git, "branch", "--", branch)
        await self._git(*git, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
        return base

    async def check_out_branch(self, path: Path, branch: str, forge: str = "github") -> str:
        """Fetch ``branch`` as the remote has it now and check it out; its head commit.

        For a round on a change request: the branch's current head, whoever pushed to it,
        so commits a person added are built on, never reset away.
        """
        private = self._git_dir_of(path)
        url = await self._bare(private, "config", "remote.origin.url")
        ref = f"refs/heads/{branch}"
        await self._git(
            "--git-dir", str(private), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
            "--no-recurse-submodules", "--", url, f"+{ref}:{ref}", auth=forge, url=url,
        )  # fmt: skip
        git = self._tree(path)
        await self._git(*git, "checkout", "--quiet", "--force", branch, "--")
        return (await self._git(*git, "rev-parse", "HEAD")).strip()

    async def committed_file(self, path: Path, name: str) -> str | None:
        """``name`` as the private git directory's HEAD commit has it, never the work tree's.

        A regular file's text; None when that commit has no regular file there (a link, a
        directory, a submodule, nothing). Read before a round checks its branch out, HEAD is
        the default branch as the mirror (the remote) has it.
        """
        private = self._git_dir_of(path)
        listed = await self._bare(private, "ls-tree", "-z", "HEAD", "--", name)
        entry = listed.split("\t", 1)[0].split()  # mode, type, object; nothing when absent
        if len(entry) != 3 or entry[1] != "blob" or entry[0] not in {"100644", "100755"}:
            return None
        return await self._git("--git-dir", str(private), "cat-file", "blob", entry[2])

    async def check_out_change(
        self, path: Path, head_ref: str, base: str, forge: str = "github"
    ) -> tuple[str, str]:
        """Fetch a pull/merge request's head and base into the private git directory and
        check the head out; ``(merge base, head)`` commits, what the review's diff spans.

        ``head_ref`` is the forge's own ref of the request (``refs/pull/41/head``), so a
        fork's request is fetched from the base repository like any other.
        """
        if not _REF.match(head_ref) or not _REF.match(f"refs/heads/{base}") or ".." in base:
            raise WorkspaceError(f"refusing to fetch {head_ref!r} and {base!r}")
        private = self._git_dir_of(path)
        url = await self._bare(private, "config", "remote.origin.url")
        await self._git(
            "--git-dir", str(private), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
            "--no-recurse-submodules", "--", url, f"+{head_ref}:{_REVIEW_HEAD}",
            f"+refs/heads/{base}:{_REVIEW_BASE}", auth=forge, url=url,
        )  # fmt: skip
        head = await self._bare(private, "rev-parse", "--verify", f"{_REVIEW_HEAD}^{{commit}}")
        start = await self._bare(private, "merge-base", _REVIEW_BASE, _REVIEW_HEAD)
        await self._git(*self._tree(path), "checkout", "--quiet", "--force", "-B", "review", head)
        return start, head

    async def commits_diff(self, path: Path, start: str, end: str) -> str:
        """The diff from commit ``start`` to ``end`` (no driver, textconv or external diff)."""
        options = ["--no-ext-diff", "--no-textconv", "--no-color", "--no-renames"]
        return await self._git(
            "--git-dir", str(self._git_dir_of(path)), "diff", *options, start, end, "--"
        )

    async def stage(self, path: Path) -> list[str]:
        """Stage every file of the workspace in the private index; the nested repositories
        left out (a directory holding a ``.git`` is another repository, never content)."""
        git = self._tree(path)
        nested = await asyncio.to_thread(_nested_repositories, path)
        await self._git(*git, "add", "--all", "--", ":/",
                        *(f":(exclude,literal){name}" for name in nested))  # fmt: skip
        return nested

    async def leave_out_untracked(self, path: Path) -> list[str]:
        """Keep the files untracked now (what setup installed) out of every later commit.

        Listed in the private git directory's ``info/exclude``, which only hookagent's git
        reads; a tracked file setup changed is still committed like any change.
        """
        git = self._tree(path)
        out = await self._git(*git, "ls-files", "--others", "--exclude-standard",
                              "--directory", "--no-empty-directory", "-z")  # fmt: skip
        found = [name.rstrip("/") for name in out.split("\0") if name.strip("/")]
        if found:
            exclude = self._git_dir_of(path) / "info" / "exclude"
            lines = "".join(f"/{_ignore_pattern(name)}\n" for name in found)
            try:
                exclude.parent.mkdir(mode=0o700, exist_ok=True)
                with exclude.open("a", encoding="utf-8") as listed:
                    listed.write(lines)
            except OSError as exc:
                raise WorkspaceError(f"could not leave setup's files out: {exc}") from None
        return found

    async def changed_files(self, path: Path, base: str) -> list[str]:
        """Paths :meth:`stage` staged since ``base`` (a rename as both its paths)."""
        out = await self._git(*self._tree(path), "diff", "--cached", "--name-only",
                              "--no-renames", "-z", base, "--")  # fmt: skip
        return [name for name in out.split("\0") if name]

    async def diff(self, path: Path, base: str, *, stat: bool = False) -> str:
        """The staged change since ``base``: every added line (``-U0``), or its diff stat.

        Binary files are shown as text, and no driver, textconv or external diff applies.
        """
        shape = ["--stat=200"] if stat else ["-U0", "--text"]
        options = ["--no-ext-diff", "--no-textconv", "--no-color", "--no-renames", *shape]
        return await self._git(*self._tree(path), "diff", "--cached", *options, base, "--")

    async def commit_all(self, path: Path, message: str, *, name: str, email: str) -> str | None:
        """Commit every change in the clone; the new commit's sha, or None when nothing changed."""
        git = self._tree(path)
        await self.stage(path)
        staged = await self._git(*git, "diff", "--cached", "--name-only", "HEAD", "--")
        if not staged.strip():
            return None
        await self._git(
            *git, "-c", f"user.name={name}", "-c", f"user.email={email}",
            "commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message,
        )  # fmt: skip
        return (await self._git(*git, "rev-parse", "HEAD")).strip()

    async def push(self, path: Path, branch: str, forge: str = "github") -> None:
        """Push ``branch`` to the remote it was cloned from (a rejected push raises)."""
        private = self._git_dir_of(path)
        # The URL the clone came from, in hookagent's own config; never a remote's name.
        url = await self._bare(private, "config", "remote.origin.url")
        await self._git(
            "--git-dir", str(private), "push", "--quiet", "--no-verify",
            "--no-recurse-submodules", "--", url, f"HEAD:refs/heads/{branch}",
            auth=forge, url=url,
        )  # fmt: skip

    async def _bare(self, private: Path, *args: str) -> str:
        """git on the private directory alone (no work tree); its output stripped."""
        return (await self._git("--git-dir", str(private), *args)).strip()

    def _git_dir_of(self, path: Path) -> Path:
        """The private git directory of the workspace at ``path``."""
        if path.parent != self._root:
            raise WorkspaceError(f"{path.name} is not a workspace of this worker")
        return self.git_dir(path.name)

    def _tree(self, path: Path) -> tuple[str, ...]:
        """git's options for the private git directory with ``path`` as its work tree."""
        private = self._git_dir_of(path)
        # The agent could have put a link to anywhere in its workspace's place.
        if path.is_symlink() or not path.is_dir():
            raise WorkspaceError(f"workspace {path.name} is no longer a directory")
        return "--git-dir", str(private), "--work-tree", str(path)

    def _env(self, auth: str | None, url: str | None) -> dict[str, str]:
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
        entries += list(self._remote(auth).auth.items()) if auth else []
        entries += _HARDENED
        if url is not None:
            entries.append((f"protocol.{_scheme(url)}.allow", "always"))
        for n, (key, value) in enumerate(entries):
            env[f"GIT_CONFIG_KEY_{n}"] = key
            env[f"GIT_CONFIG_VALUE_{n}"] = value
        env["GIT_CONFIG_COUNT"] = str(len(entries))
        return env

    async def _git(self, *args: str, auth: str | None = None, url: str | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env(auth, url),
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


def _trash(path: Path) -> list[Path]:
    """Rename ``path`` to a hidden sibling, deleted later: where it went, if anywhere."""
    if path.is_symlink():
        path.unlink()
        return []
    if not path.exists():
        return []
    moved = path.with_name(f"{_TRASH}{path.name}-{os.urandom(4).hex()}")
    os.rename(path, moved)
    return [moved]


def _empty_trash(root: Path) -> None:
    """Delete what a crash left renamed in ``root`` (a deletion under way is younger)."""
    try:
        found = [p for p in root.iterdir() if p.name.startswith(_TRASH)]
    except FileNotFoundError:
        return
    for path in found:
        if _age(path) > _TRASH_AGE_S:
            remove_tree(path)


def _ignore_pattern(name: str) -> str:
    """``name`` as a gitignore pattern matching that path alone (wildcards escaped)."""
    escaped = re.sub(r"([\\*?\[!# ])", r"\\\1", name)
    return escaped.replace("\n", "?")  # a name with a newline: matched by any character


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
