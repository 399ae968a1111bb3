"""Every real CLI here runs with a home of its own, never the machine's.

The CLIs' shell tools start login shells, which source the home's dotfiles: a host's
``~/.bashrc`` running ``pyenv init`` waits a minute on a lock a killed shell left behind,
and the tool's result comes back empty. The tests must not depend on the host's dotfiles.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ``HOME`` for the worker and the CLIs it starts."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home
