"""Task workspaces: clone with git, branch, commit, push."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from hookagent.errors import WorkspaceError

_TASK_ID = re.compile(r"^task-[0-9]+-[0-9a-f]+$")


class Workspaces:
    """Clones a task's repository into ``root/<task_id>``."""

    def __init__(self, root: Path, *, url_template: str, timeout: float) -> None:
        self._root = root
        self._template = url_template
        self._timeout = timeout

    def path(self, task_id: str) -> Path:
        """Where the task's clone lives."""
        if not _TASK_ID.match(task_id):
            raise WorkspaceError(f"bad task id {task_id!r}")
        return self._root / task_id

    async def clone(self, task_id: str, repo: str) -> Path:
        """A fresh clone (an earlier attempt's leftovers are removed first)."""
        target = self.path(task_id)
        if target.exists():
            await asyncio.to_thread(shutil.rmtree, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        url = self._template.format(repo=repo)
        await self._git("clone", "--quiet", "--no-tags", "--", url, str(target))
        return target

    async def start_branch(self, path: Path, branch: str) -> str:
        """Create and check out ``branch``; returns the branch it starts from (the default)."""
        base = await self._git_out(path, "rev-parse", "--abbrev-ref", "HEAD")
        await self._git("-C", str(path), "checkout", "--quiet", "-b", branch)
        return base

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

    async def push(self, path: Path, branch: str) -> None:
        """Push ``branch`` to origin (a rejected push raises with git's reason)."""
        await self._git("-C", str(path), "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")

    async def _git_out(self, path: Path, *args: str) -> str:
        return (await self._git("-C", str(path), *args)).strip()

    async def _git(self, *args: str) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
        proc = await asyncio.create_subprocess_exec(
            "git",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(self._timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise WorkspaceError(
                f"git {' '.join(args[:3])} timed out after {self._timeout:.0f}s"
            ) from None
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        verb = next(
            (a for a in args if not a.startswith("-") and "=" not in a and "/" not in a), ""
        )
        if proc.returncode != 0:
            detail = err.decode("utf-8", errors="replace").strip()[-2000:]
            raise WorkspaceError(f"git {verb} failed (exit {proc.returncode}): {detail}")
        return out.decode("utf-8", errors="replace")
