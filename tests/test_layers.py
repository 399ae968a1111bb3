"""The import graph reads as layers: every import of ``src/hookagent`` against one table."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "src" / "hookagent"
# Modules and packages that import nothing of ours but each other: the root holds only
# these and the subpackages below.
LEAVES = frozenset(
    {
        "settings",
        "models",
        "errors",
        "race",
        "json_values",
        "redact",
        "secret_values",
        "policy",
        "briefing",
        "__init__",
    }
)
# Who may import whom besides the leaves; ``cli`` composes everything and nothing imports it.
ALLOWED: dict[str, frozenset[str]] = {
    "store": frozenset(),
    "agents": frozenset(),
    "sources": frozenset(),
    "forges": frozenset(),
    "services": frozenset({"store", "sources"}),
    "notify": frozenset({"store", "forges", "sources"}),
    "worker": frozenset({"store", "agents", "forges"}),
    "api": frozenset({"store", "services", "sources", "notify"}),
    "cli": frozenset(
        {"store", "services", "sources", "notify", "agents", "forges", "worker", "api"}
    ),
}


def unit(module: str) -> str:
    """The layer of a dotted module name: its subpackage, or the root module's own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (function-level too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            found |= {f"{base}.{a.name}" for a in node.names} if base == "hookagent" else {base}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def module_of(path: Path) -> str:
    """``src/hookagent/store/tasks.py`` → ``hookagent.store.tasks``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_root_holds_only_leaves_and_subpackages() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= LEAVES, sorted(modules - LEAVES)
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(ALLOWED) | LEAVES, sorted(packages - set(ALLOWED) - LEAVES)


def test_no_import_runs_up_the_layers() -> None:
    wrong: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = unit(module_of(path))
        may = LEAVES | ALLOWED.get(here, frozenset()) | {here}
        for name in imports(path):
            if name.startswith("hookagent.") and name != "hookagent.__version__":
                if unit(name) not in may:
                    wrong.append(f"{module_of(path)} imports {name}")
            elif name.split(".")[0] == "redis" and here != "store":
                wrong.append(f"{module_of(path)} imports {name} (only store/ talks to Redis)")
    assert wrong == []


def test_the_check_sees_an_import_up_the_layers(tmp_path: Path) -> None:
    """The walk finds imports inside functions too: a lazy import is still a dependency."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from hookagent.api.app import create_app\n    import redis\n")
    assert imports(source) == {"hookagent.api.app", "redis"}
    assert unit("hookagent.api.app") not in LEAVES | ALLOWED["store"]
