"""After execution: commit what the agent changed, push the branch, open the change request.

The task's ``forge`` (GitHub unless it came from GitLab) picks where both go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hookagent.errors import WorkspaceError
from hookagent.forges import build_forges
from hookagent.models import Task, utc_iso
from hookagent.redact import Redactor
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.writer import LogWriter
from hookagent.worker.checks import TestReport
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
        self._forges = build_forges(settings)

    async def publish(
        self,
        task: Task,
        path: Path,
        branch: str,
        base: str,
        writer: LogWriter,
        *,
        report: TestReport | None = None,
    ) -> dict[str, Any]:
        """Commit, push and open the change request; the task fields that record it.

        ``report``: the checks run on the change; a failed test opens it as a draft.
        """
        s = self._settings
        checkout = self._workspaces.checkout(path)
        sha = await checkout.commit_all(
            f"{task.title}\n\nhookagent task {task.task_id}",
            name=s.git_author_name,
            email=s.git_author_email,
        )
        if sha is None:
            await writer.system("the agent changed nothing; no commit, no pull request")
            return {"result": "no changes", "branch": None}
        await writer.system(f"committed {sha[:12]} on {branch}")
        try:
            await checkout.push(branch, task.forge)
        except WorkspaceError as exc:
            raise WorkspaceError(f"push of {branch} rejected: {exc.message}") from None
        await writer.system(f"pushed {branch}")
        fields: dict[str, Any] = {"commit": sha, "result": f"branch {branch} pushed"}
        forge = self._forges.get(task.forge)
        if forge is None:
            token = f"HOOKAGENT_{task.forge.upper()}_TOKEN"
            noun = "merge request" if task.forge == "gitlab" else "pull request"
            await writer.system(f"no {token}: branch pushed, no {noun} opened")
            return fields
        opened = await forge.open_change_request(
            repo=task.repository,
            head=branch,
            base=base,
            title=f"hookagent: {task.title}"[:250],
            body=self.body(task, report),
            draft=report is not None and report.draft,
        )
        # Comments on the change request (``@hookagent …``) act on this task, and so does
        # its end: ``owner/repo!41`` (GitLab's own syntax) names the request on both forges.
        change = f"{task.repository}!{opened.number}"
        for ref in dict.fromkeys((opened.ref, change)):
            await self._store.refs.link(task.forge, ref, task.task_id)
        await writer.system(f"opened {opened.label}: {opened.url}")
        return fields | {
            "pr_url": opened.url,
            "pr_number": opened.number,
            "pr_opened_at": utc_iso(),
            "result": opened.url,
        }

    def body(self, task: Task, report: TestReport | None = None) -> str:
        """The change request's description: task, source, plan, approver and checks."""
        cost = f"${task.total_cost_usd:.4f}" if task.total_cost_usd is not None else "n/a"
        link = f"{self._settings.public_url.rstrip('/')}/tasks/{task.task_id}"
        source = f"[{task.source}]({task.url})" if task.url else task.source
        return self._redactor.redact(
            f"Opened by hookagent for task [{task.task_id}]({link}) from {source}.\n\n"
            f"## Plan\n\n{task.plan or '(none)'}\n\n"
            f"Approved by {task.approver or 'unknown'}. Planning cost: {cost}.\n"
            + (f"\n{report.summary()}" if report is not None else "")
        )
