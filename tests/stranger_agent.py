"""The stranger's agent: a prompt injection obeyed, in planning and in execution.

``GIT_AGENT NET_AGENT MARKERS``: plants every git attack of ``tests/git_agent.py`` (each
writes ``MARKERS/<attack>`` if anything ever runs it), probes the network as
``tests/net_agent.py`` does (the ``NET_*`` variables), and prints every value of
``STRANGER_SECRETS`` (what it found out) plain, in base64, URL-safe base64 and hex. While
executing it also makes the normal change ``git_agent`` makes. Both helpers are loaded from
their files: the sandbox binds the files named on the command line, not their directory.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType


def load(path: str) -> ModuleType:
    """The module in ``path``."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(git_agent: str, net_agent: str, markers: str) -> int:
    """Every attack, then the plan (or the change)."""
    executing = "Approved plan:" in sys.stdin.read()
    for value in filter(None, os.environ.get("STRANGER_SECRETS", "").split(",")):
        raw = value.encode()
        forms = (value, base64.b64encode(raw), base64.urlsafe_b64encode(raw), raw.hex())
        for form in forms:
            text = form.decode() if isinstance(form, bytes) else form
            print(f"exfiltrating {text} now", flush=True)
    load(net_agent).probe()
    return int(load(git_agent).attack(Path(markers), "hooks", None, executing))


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
