"""Directories hookagent keeps for itself: made private, and removed whatever is inside."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents mode 0700, or tighten it to 0700."""
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)


def remove_tree(path: Path) -> None:
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
