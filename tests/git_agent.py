"""A hostile ``command`` agent for the git wall tests: it plants git config, hooks and drivers.

``attack MARKERS SET [OUTSIDE]``: in planning and in execution, plant every attack of SET
(``hooks`` or ``config``) in the workspace's ``.git`` and tree. Each planted program, if
anything ever runs it, writes ``MARKERS/<attack>``; the agent itself never touches MARKERS
(under bubblewrap it cannot even see it), so a marker can only come from a process outside
the sandbox: hookagent's own git. When executing it also makes a normal change (app.py), a
symlink pointing outside its workspace, and (SET ``config``) points ``core.worktree`` at
OUTSIDE, a host directory holding a file that must never be committed.

``write PLAN PATH=TEXT...``: print PLAN while planning; when executing, write each file.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

HOOKS = (
    "pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "reference-transaction",
    "post-checkout", "post-index-change", "pre-push", "pre-auto-gc", "post-rewrite",
)  # fmt: skip
LINK = "docs/outside-link"
LINK_TARGET = "/etc/hostname"


def main(argv: list[str]) -> int:
    """Run the mode named by argv[0]."""
    prompt = sys.stdin.read()
    executing = "Approved plan:" in prompt
    if argv[0] == "write":
        return write(argv[1], argv[2:], executing)
    if argv[0] == "attack":
        return attack(Path(argv[1]), argv[2], argv[3] if len(argv) > 3 else None, executing)
    print(f"unknown mode {argv[0]}", file=sys.stderr)
    return 2


def write(plan: str, files: list[str], executing: bool) -> int:
    """Plan, or write ``PATH=TEXT`` files (``\\n`` in TEXT becomes a line break)."""
    if not executing:
        print(f"PLAN: {plan}")
        return 0
    for item in files:
        name, _, text = item.partition("=")
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text.replace("\\n", "\n"))
        print(f"wrote {name}")
    return 0


def attack(markers: Path, which: str, outside: str | None, executing: bool) -> int:
    """Plant every attack of ``which``; report each as planted or refused."""
    planted = PLANTS[which](markers, Path.cwd(), outside)
    for name, error in planted:
        print(f"attack {name}: {error or 'planted'}")
    if not executing:
        print("PLAN: guard the division in app.py")
        return 0
    with open("app.py", "a") as source:
        source.write("\n\ndef safe_total(xs):\n    return total(xs) if xs else 0\n")
    os.makedirs("docs", exist_ok=True)
    os.symlink(LINK_TARGET, LINK)
    print("done")
    return 0


Planted = list[tuple[str, str | None]]


def _program(workspace: Path, markers: Path, name: str) -> str:
    """An executable in the workspace's .git that writes ``markers/name`` when run."""
    path = workspace / ".git" / "evil" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!/bin/sh\necho ran > {shlex.quote(str(markers / name))}\n")
    path.chmod(0o755)
    return str(path)


def _try(planted: Planted, name: str, step: object) -> None:
    try:
        if callable(step):
            step()
        planted.append((name, None))
    except OSError as exc:
        planted.append((name, f"{type(exc).__name__} {exc.strerror}"))


def _append(path: Path, text: str) -> None:
    with path.open("a") as out:
        out.write(text)


def hooks(markers: Path, workspace: Path, outside: str | None) -> Planted:
    """Hooks in .git/hooks, fsmonitor, filter and diff drivers, pager, gpg, ext:: push URL."""
    planted: Planted = []
    git = workspace / ".git"
    config = git / "config"

    def hook(name: str) -> None:
        program = _program(workspace, markers, f"hook-{name}")
        (git / "hooks" / name).write_text(f"#!/bin/sh\nexec {program}\n")
        (git / "hooks" / name).chmod(0o755)

    for name in HOOKS:
        _try(planted, f"hook-{name}", lambda name=name: hook(name))

    def settings() -> None:
        p = {
            name: _program(workspace, markers, name)
            for name in ("fsmonitor", "filter-clean", "filter-smudge", "filter-process",
                         "diff-external", "diff-textconv", "diff-command", "pager",
                         "credential-helper", "gpg-program", "ext-pushurl", "editor")
        }  # fmt: skip
        _append(
            config,
            f"[core]\n\tfsmonitor = {p['fsmonitor']}\n\tpager = {p['pager']}\n"
            f"\teditor = {p['editor']}\n\tuntrackedCache = true\n"
            f'[filter "evil"]\n\tclean = {p["filter-clean"]}\n\tsmudge = {p["filter-smudge"]}\n'
            f"\tprocess = {p['filter-process']}\n\trequired = false\n"
            f"[diff]\n\texternal = {p['diff-external']}\n"
            f'[diff "evil"]\n\ttextconv = {p["diff-textconv"]}\n\tcommand = {p["diff-command"]}\n'
            f"[pager]\n\tdiff = {p['pager']}\n\tstatus = {p['pager']}\n"
            f"[credential]\n\thelper = !{p['credential-helper']}\n"
            f"[commit]\n\tgpgSign = true\n[gpg]\n\tprogram = {p['gpg-program']}\n"
            f"[gc]\n\tauto = 1\n\tautoDetach = false\n"
            f'[protocol]\n\tallow = always\n[protocol "ext"]\n\tallow = always\n'
            f'[remote "origin"]\n\tpushurl = ext::{p["ext-pushurl"]} %S\n',
        )
        attributes = "* filter=evil diff=evil\n"
        (git / "info").mkdir(exist_ok=True)
        (git / "info" / "attributes").write_text(attributes)
        (workspace / ".gitattributes").write_text(attributes)

    _try(planted, "config", settings)
    return planted


def config(markers: Path, workspace: Path, outside: str | None) -> Planted:
    """core.hooksPath, an include, core.worktree outside, an ssh origin with core.sshCommand."""
    planted: Planted = []
    git = workspace / ".git"

    def settings() -> None:
        hooks_dir = workspace / ".githooks"
        hooks_dir.mkdir(exist_ok=True)
        for name in ("post-commit", "reference-transaction", "pre-push", "post-checkout"):
            program = _program(workspace, markers, f"hookspath-{name}")
            (hooks_dir / name).write_text(f"#!/bin/sh\nexec {program}\n")
            (hooks_dir / name).chmod(0o755)
        included = git / "extra.cfg"
        included.write_text(f"[core]\n\tfsmonitor = {_program(workspace, markers, 'include')}\n")
        ssh = _program(workspace, markers, "ssh-command")
        worktree = f"\tworktree = {outside}\n" if outside else ""
        _append(
            git / "config",
            f"[core]\n\thooksPath = {hooks_dir}\n\tsshCommand = {ssh}\n{worktree}"
            f"[include]\n\tpath = {included}\n"
            '[remote "origin"]\n\turl = ssh://hookagent.invalid/acme/payments-api.git\n',
        )

    _try(planted, "config", settings)
    return planted


PLANTS = {"hooks": hooks, "config": config}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
