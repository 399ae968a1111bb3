"""The agent's environment: an allowlist, so hookagent's own secrets never reach the CLI.

The agent runs whatever the model decides on a checkout of someone else's code; anything in
its environment can end up in a commit, a log line or a request to the outside world. It
gets the basics a process needs, the names its adapter declares (model key and endpoint),
and the names the operator lists in ``HOOKAGENT_AGENT_ENV``. A ``FOO_*`` entry allows a
prefix. ``HOOKAGENT_*`` is never passed on, even when listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

BASE_NAMES = ("PATH", "HOME", "LANG", "LC_*", "TERM", "TMPDIR", "USER")
NEVER_PREFIX = "HOOKAGENT_"


def parse_names(spec: str) -> tuple[str, ...]:
    """The names (or ``FOO_*`` prefixes) in a comma-separated ``HOOKAGENT_AGENT_ENV``."""
    return tuple(name.strip() for name in spec.split(",") if name.strip())


def agent_environment(
    base: Mapping[str, str],
    *,
    allowed_extra: Iterable[str] = (),
    agent_names: Iterable[str] = (),
) -> dict[str, str]:
    """The part of ``base`` the agent may see: basics, its adapter's names, the listed extras."""
    patterns = (*BASE_NAMES, *agent_names, *allowed_extra)
    exact = {p for p in patterns if not p.endswith("*")}
    # A lone "*" would pass everything; a prefix must name something.
    prefixes = tuple(p[:-1] for p in patterns if p.endswith("*") and len(p) > 1)
    return {
        name: value
        for name, value in base.items()
        if not name.startswith(NEVER_PREFIX) and (name in exact or name.startswith(prefixes))
    }
