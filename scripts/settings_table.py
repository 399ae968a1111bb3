"""The README's settings table, generated from the ``Field(description=…)`` of each setting.

    .venv/bin/python scripts/settings_table.py            # print the table
    .venv/bin/python scripts/settings_table.py --write    # rewrite it in README.md
    .venv/bin/python scripts/settings_table.py --check    # exit 1 when README.md differs

The table sits in README.md between two HTML comments (:data:`START`, :data:`END`); rows
follow the fields' order in ``Settings``, then ``ClientSettings`` (the CLI's client
commands). A default the value cannot show (computed, or meaning "auto") comes from the
field's ``json_schema_extra={"default_doc": …}``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from hookagent.settings import ClientSettings, Settings

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
FIX = ".venv/bin/python scripts/settings_table.py --write"
MODELS: tuple[type[BaseSettings], ...] = (Settings, ClientSettings)


def shown_default(info: FieldInfo) -> str:
    """The default as a user sees it: unset, empty, `true`, `300`, `claude`, or its display."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("default_doc"), str):
        return str(extra["default_doc"])
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def rows(model: type[BaseSettings]) -> list[str]:
    """One table row per field of ``model``; a field without a description is an error."""
    prefix = str(model.model_config.get("env_prefix", ""))
    found = []
    for name, info in model.model_fields.items():
        variable = f"{prefix}{name}".upper()
        if not info.description:
            raise ValueError(f"{model.__name__}.{name} ({variable}) has no Field(description=…)")
        meaning = info.description.replace("|", "\\|")
        found.append(f"| `{variable}` | {shown_default(info)} | {meaning} |")
    return found


def table() -> str:
    """The whole markdown table, header included, one line per setting."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for model in MODELS:
        lines += rows(model)
    return "\n".join(lines) + "\n"


def with_table(readme: str, generated: str) -> str:
    """``readme`` with the text between the markers replaced by ``generated``."""
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"README.md lacks the markers {START} … {END}")
    return f"{head}{START}\n{generated}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Print the table, write it into the README, or check the README has it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the table in the README")
    mode.add_argument("--check", action="store_true", help="exit 1 if the README differs")
    parser.add_argument("--readme", type=Path, default=README, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    generated = table()
    if not (args.write or args.check):
        sys.stdout.write(generated)
        return 0
    current = args.readme.read_text()
    wanted = with_table(current, generated)
    if args.write:
        if wanted != current:
            args.readme.write_text(wanted)
        return 0
    if wanted == current:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        wanted.splitlines(keepends=True),
        "README.md",
        "generated from Settings",
    )
    sys.stderr.write("".join(diff))
    sys.stderr.write(f"README.md's settings table differs from Settings; run: {FIX}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
