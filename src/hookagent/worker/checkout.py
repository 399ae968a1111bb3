"""A task's checkout: its workspace and private git directory, seen through hookagent's git.

A module of its own because these are the verbs run on a checkout once it exists (branch,
stage, diff, commit, push, the agent's ``.git``), apart from where checkouts come from and
how they go (workspace.py). Every verb runs hookagent's hardened git (git.py) with
``--git-dir`` naming the private directory, never the workspace's ``.git``: that one is the
agent's copy (:meth:`Checkout.hand_over`), which it may wreck at will and hookagent never
reads back.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path

from hookagent.errors import WorkspaceError
from hookagent.worker.files import remove_tree
from hookagent.worker.git import HardenedGit

# A ref a review may fetch: plain ref path segments, nothing a refspec or option could read.
_REF = re.compile(r"^refs/[A-Za-z0-9._/-]+$")
# Where a review's fetched head and base are kept in the private git directory.
_REVIEW_HEAD = "refs/hookagent/review-head"
_REVIEW_BASE = "refs/hookagent/review-base"


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


def _ignore_pattern(name: str) -> str:
    """``name`` as a gitignore pattern matching that path alone (wildcards escaped)."""
    escaped = re.sub(r"([\\*?\[!# ])", r"\\\1", name)
    return escaped.replace("\n", "?")  # a name with a newline: matched by any character


class Checkout:
    """One task's workspace and its private git directory: the git verbs run on them."""

    def __init__(self, git: HardenedGit, path: Path, private: Path) -> None:
        self._git = git
        self._path = path
        self._private = private

    async def check_out_head(self) -> None:
        """Check the private git directory's HEAD out into the workspace (files only)."""
        await self._git(*self._tree(), "checkout", "--quiet", "--force")

    async def hand_over(self) -> None:
        """Give the agent a ``.git`` of its own: a copy of the private one, never read back."""
        private, copy = self._private, self._path / ".git"
        url = await self._git.bare(private, "config", "remote.origin.url")
        heads = await self._git.bare(
            private, "for-each-ref", "--format=%(objectname) %(refname:short)", "refs/heads"
        )
        current = await self._git.bare(private, "symbolic-ref", "--short", "HEAD")
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

    async def start_branch(self, branch: str) -> str:
        """Create and check out ``branch``; returns the branch it starts from (the default)."""
        git = self._tree()
        base = (await self._git(*git, "symbolic-ref", "--short", "HEAD")).strip()
        await self._git(*git, "branch", "--", branch)
        await self._git(*git, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
        return base

    async def check_out_branch(self, branch: str, forge: str = "github") -> str:
        """Fetch ``branch`` as the remote has it now and check it out; its head commit.

        For a round on a change request: the branch's current head, whoever pushed to it,
        so commits a person added are built on, never reset away.
        """
        private = self._private
        url = await self._git.bare(private, "config", "remote.origin.url")
        ref = f"refs/heads/{branch}"
        await self._git(
            "--git-dir", str(private), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
            "--no-recurse-submodules", "--", url, f"+{ref}:{ref}", auth=forge, url=url,
        )  # fmt: skip
        git = self._tree()
        await self._git(*git, "checkout", "--quiet", "--force", branch, "--")
        return (await self._git(*git, "rev-parse", "HEAD")).strip()

    async def committed_file(self, name: str) -> str | None:
        """``name`` as the private git directory's HEAD commit has it, never the work tree's.

        A regular file's text; None when that commit has no regular file there (a link, a
        directory, a submodule, nothing). Read before a round checks its branch out, HEAD is
        the default branch as the mirror (the remote) has it.
        """
        private = self._private
        listed = await self._git.bare(private, "ls-tree", "-z", "HEAD", "--", name)
        entry = listed.split("\t", 1)[0].split()  # mode, type, object; nothing when absent
        if len(entry) != 3 or entry[1] != "blob" or entry[0] not in {"100644", "100755"}:
            return None
        return await self._git("--git-dir", str(private), "cat-file", "blob", entry[2])

    async def check_out_change(
        self, head_ref: str, base: str, forge: str = "github"
    ) -> tuple[str, str]:
        """Fetch a pull/merge request's head and base into the private git directory and
        check the head out; ``(merge base, head)`` commits, what the review's diff spans.

        ``head_ref`` is the forge's own ref of the request (``refs/pull/41/head``), so a
        fork's request is fetched from the base repository like any other.
        """
        if not _REF.match(head_ref) or not _REF.match(f"refs/heads/{base}") or ".." in base:
            raise WorkspaceError(f"refusing to fetch {head_ref!r} and {base!r}")
        private = self._private
        url = await self._git.bare(private, "config", "remote.origin.url")
        await self._git(
            "--git-dir", str(private), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
            "--no-recurse-submodules", "--", url, f"+{head_ref}:{_REVIEW_HEAD}",
            f"+refs/heads/{base}:{_REVIEW_BASE}", auth=forge, url=url,
        )  # fmt: skip
        head = await self._git.bare(private, "rev-parse", "--verify", f"{_REVIEW_HEAD}^{{commit}}")
        start = await self._git.bare(private, "merge-base", _REVIEW_BASE, _REVIEW_HEAD)
        await self._git(*self._tree(), "checkout", "--quiet", "--force", "-B", "review", head)
        return start, head

    async def commits_diff(self, start: str, end: str) -> str:
        """The diff from commit ``start`` to ``end`` (no driver, textconv or external diff)."""
        options = ["--no-ext-diff", "--no-textconv", "--no-color", "--no-renames"]
        return await self._git("--git-dir", str(self._private), "diff", *options, start, end, "--")

    async def stage(self) -> list[str]:
        """Stage every file of the workspace in the private index; the nested repositories
        left out (a directory holding a ``.git`` is another repository, never content)."""
        git = self._tree()
        nested = await asyncio.to_thread(_nested_repositories, self._path)
        await self._git(*git, "add", "--all", "--", ":/",
                        *(f":(exclude,literal){name}" for name in nested))  # fmt: skip
        return nested

    async def leave_out_untracked(self) -> list[str]:
        """Keep the files untracked now (what setup installed) out of every later commit.

        Listed in the private git directory's ``info/exclude``, which only hookagent's git
        reads; a tracked file setup changed is still committed like any change.
        """
        git = self._tree()
        out = await self._git(*git, "ls-files", "--others", "--exclude-standard",
                              "--directory", "--no-empty-directory", "-z")  # fmt: skip
        found = [name.rstrip("/") for name in out.split("\0") if name.strip("/")]
        if found:
            exclude = self._private / "info" / "exclude"
            lines = "".join(f"/{_ignore_pattern(name)}\n" for name in found)
            try:
                exclude.parent.mkdir(mode=0o700, exist_ok=True)
                with exclude.open("a", encoding="utf-8") as listed:
                    listed.write(lines)
            except OSError as exc:
                raise WorkspaceError(f"could not leave setup's files out: {exc}") from None
        return found

    async def changed_files(self, base: str) -> list[str]:
        """Paths :meth:`stage` staged since ``base`` (a rename as both its paths)."""
        out = await self._git(*self._tree(), "diff", "--cached", "--name-only",
                              "--no-renames", "-z", base, "--")  # fmt: skip
        return [name for name in out.split("\0") if name]

    async def diff(self, base: str, *, stat: bool = False) -> str:
        """The staged change since ``base``: every added line (``-U0``), or its diff stat.

        Binary files are shown as text, and no driver, textconv or external diff applies.
        """
        shape = ["--stat=200"] if stat else ["-U0", "--text"]
        options = ["--no-ext-diff", "--no-textconv", "--no-color", "--no-renames", *shape]
        return await self._git(*self._tree(), "diff", "--cached", *options, base, "--")

    async def commit_all(self, message: str, *, name: str, email: str) -> str | None:
        """Commit every change in the clone; the new commit's sha, or None when nothing changed."""
        git = self._tree()
        await self.stage()
        staged = await self._git(*git, "diff", "--cached", "--name-only", "HEAD", "--")
        if not staged.strip():
            return None
        await self._git(
            *git, "-c", f"user.name={name}", "-c", f"user.email={email}",
            "commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", message,
        )  # fmt: skip
        return (await self._git(*git, "rev-parse", "HEAD")).strip()

    async def push(self, branch: str, forge: str = "github") -> None:
        """Push ``branch`` to the remote it was cloned from (a rejected push raises)."""
        private = self._private
        # The URL the clone came from, in hookagent's own config; never a remote's name.
        url = await self._git.bare(private, "config", "remote.origin.url")
        await self._git(
            "--git-dir", str(private), "push", "--quiet", "--no-verify",
            "--no-recurse-submodules", "--", url, f"HEAD:refs/heads/{branch}",
            auth=forge, url=url,
        )  # fmt: skip

    def _tree(self) -> tuple[str, ...]:
        """git's options for the private git directory with the workspace as its work tree."""
        path = self._path
        # The agent could have put a link to anywhere in its workspace's place.
        if path.is_symlink() or not path.is_dir():
            raise WorkspaceError(f"workspace {path.name} is no longer a directory")
        return "--git-dir", str(self._private), "--work-tree", str(path)
