"""After execution: commit what the agent changed, push the branch, open the pull request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookagent.errors import WorkspaceError
from hookagent.forges.github import open_pull_request
from hookagent.models import Task
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.writer import LogWriter
from hookagent.worker.workspace import Workspaces


class Publisher:
    """Turns an executed workspace into a commit, a pushed branch and a pull request."""

    def __init__(
        self, *, store: Store, settings: Settings, workspaces: Workspaces, redactor: Redactor
    ) -> None:
        self._store = store
        self._settings = settings
        self._workspaces = workspaces
        self._redactor = redactor

    async def publish(
        self, task: Task, path: Path, branch: str, base: str, writer: LogWriter
    ) -> dict[str, Any]:
        """Commit, push and open the pull request; the task fields that record it."""
        s = self._settings
        sha = await self._workspaces.commit_all(
            path,
            f"{task.title}\n\nhookagent task {task.task_id}",
            name=s.git_author_name,
            email=s.git_author_email,
        )
        if sha is None:
            await writer.system("the agent changed nothing; no commit, no pull request")
            return {"result": "no changes", "branch": None}
        await writer.system(f"committed {sha[:12]} on {branch}")
        try:
            await self._workspaces.push(path, branch)
        except WorkspaceError as exc:
            raise WorkspaceError(f"push of {branch} rejected: {exc.message}") from None
        await writer.system(f"pushed {branch}")
        fields: dict[str, Any] = {"commit": sha, "result": f"branch {branch} pushed"}
        if s.github_token is None:
            await writer.system("no HOOKAGENT_GITHUB_TOKEN: branch pushed, no pull request opened")
            return fields
        pull = await open_pull_request(
            api_url=s.github_api_url,
            token=s.github_token.get_secret_value(),
            repo=task.repository,
            head=branch,
            base=base,
            title=f"hookagent: {task.title}"[:250],
            body=self.body(task),
        )
        # Comments on the pull request (``@hookagent …``) act on this task.
        await self._store.refs.link("github", f"{task.repository}#{pull.number}", task.task_id)
        await writer.system(f"opened pull request #{pull.number}: {pull.url}")
        return fields | {"pr_url": pull.url, "pr_number": pull.number, "result": pull.url}

    def body(self, task: Task) -> str:
        """The pull request's description: the task, its source, the plan and who approved."""
        cost = f"${task.total_cost_usd:.4f}" if task.total_cost_usd is not None else "n/a"
        link = f"{self._settings.public_url.rstrip('/')}/tasks/{task.task_id}"
        source = f"[{task.source}]({task.url})" if task.url else task.source
        return self._redactor.redact(
            f"Opened by hookagent for task [{task.task_id}]({link}) from {source}.\n\n"
            f"## Plan\n\n{task.plan or '(none)'}\n\n"
            f"Approved by {task.approver or 'unknown'}. Planning cost: {cost}.\n"
        )
