"""``hookagent cache list|clear [REPO]``: the per-repository caches on this machine."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape

from hookagent.settings import Settings
from hookagent.worker.cache import Caches
from hookagent.worker.spare import Spares


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``cache`` command and its two verbs."""
    cache = sub.add_parser(
        "cache", help="list or clear the per-repository caches (HOOKAGENT_CACHE_DIR)"
    )
    verbs = cache.add_subparsers(required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="each repository's cache: size, last use (LRU first)")
    listing.add_argument("repo", nargs="?", help="only this repository (owner/name)")
    listing.set_defaults(run=run, verb="list", url=None, token=None)
    clear = verbs.add_parser(
        "clear", help="remove one repository's cache and spare checkout, or every one"
    )
    clear.add_argument("repo", nargs="?", help="owner/name (default: every repository)")
    clear.set_defaults(run=run, verb="clear", url=None, token=None)
    for parser in (listing, clear):
        parser.add_argument(
            "--forge", default="github", help="the repository's forge (default github)"
        )


def run(args: argparse.Namespace) -> int:
    """List or clear; exit 1 when a cache to clear is in use by a running task."""
    settings: Settings = args.settings
    caches = Caches.from_settings(settings)
    console = Console(soft_wrap=True)
    if args.verb == "list":
        entries = [
            e
            for e in caches.entries()
            if args.repo is None
            or (e.repository.lower(), e.forge) == (args.repo.lower(), args.forge)
        ]
        for entry in entries:
            console.print(escape(entry.describe()), highlight=False)
        if not entries:
            console.print(f"no caches in {escape(str(settings.caches))}", highlight=False)
        return 0
    removed, busy = caches.clear(args.repo, args.forge)
    # The spare checkouts go too: nothing of the repository stays on the host but its mirror.
    spares = Spares(settings.data_dir / "spares").clear(args.repo, args.forge)
    for name in removed:
        console.print(f"cleared {escape(name)}", highlight=False)
    for name in spares:
        console.print(f"cleared the spare checkout {escape(name)}", highlight=False)
    for name in busy:
        console.print(f"in use, not cleared: {escape(name)}", highlight=False)
    if not removed and not busy and not spares:
        console.print("nothing to clear", highlight=False)
    return 1 if busy else 0
