"""The README's settings table is the one generated from the settings' descriptions."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hookagent.settings import ClientSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "settings_table.py"


def load_script() -> ModuleType:
    """scripts/settings_table.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("settings_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


table_script = load_script()


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    generated = table_script.with_table(readme, table_script.table())
    assert readme == generated, (
        "README.md's settings table differs from the Settings descriptions; "
        f"run: {table_script.FIX}"
    )


@pytest.mark.parametrize("model", [Settings, ClientSettings])
def test_every_setting_is_described(model: type[BaseSettings]) -> None:
    undescribed = [name for name, info in model.model_fields.items() if not info.description]
    assert undescribed == []


def test_defaults_read_as_users_write_them() -> None:
    shown = {
        row.split(" | ")[0].strip("|` "): row.split(" | ")[1] for row in table_script.rows(Settings)
    }
    assert shown["HOOKAGENT_REDIS_URL"] == "unset"
    assert shown["HOOKAGENT_CORS_ORIGINS"] == "empty"
    assert shown["HOOKAGENT_ACCESS_LOG"] == "`true`"
    assert shown["HOOKAGENT_REDIS_CLUSTER"] == "`false`"
    assert shown["HOOKAGENT_PLANNING_TIMEOUT"] == "`300`"  # 300.0, written as users would
    assert shown["HOOKAGENT_TASK_TTL"] == "`604800`"
    assert shown["HOOKAGENT_AGENT"] == "`claude`"
    assert shown["HOOKAGENT_WORKSPACE_DIR"] == "`$DATA_DIR/workspaces`"
    assert shown["HOOKAGENT_REQUIRE_SIGNATURES"] == "auto"
    assert len(shown) == len(Settings.model_fields)


def test_a_field_without_description_is_refused() -> None:
    class Described(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="HOOKAGENT_")
        piped: int = Field(default=1, description="a | b")

    class Bare(Described):
        bare: int = 2

    # A pipe in a description would otherwise end the row's cell.
    assert table_script.rows(Described) == ["| `HOOKAGENT_PIPED` | `1` | a \\| b |"]
    with pytest.raises(ValueError, match=r"Bare\.bare \(HOOKAGENT_BARE\) has no"):
        table_script.rows(Bare)


def test_check_fails_on_a_drifted_readme_and_write_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    good = (ROOT / "README.md").read_text()
    row = "| `HOOKAGENT_KILL_GRACE` | `5` |"
    assert row in good
    readme.write_text(good.replace(row, "| `HOOKAGENT_KILL_GRACE` | `7` |"))
    assert table_script.main(["--check", "--readme", str(readme)]) == 1
    said = capsys.readouterr().err
    assert "+" + row in said and "scripts/settings_table.py --write" in said

    assert table_script.main(["--write", "--readme", str(readme)]) == 0
    assert readme.read_text() == good
    assert table_script.main(["--check", "--readme", str(readme)]) == 0


def test_a_readme_without_markers_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no table here\n")
    with pytest.raises(ValueError, match="lacks the markers"):
        table_script.main(["--check", "--readme", str(readme)])


def test_the_script_runs_on_its_own() -> None:
    printed = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert printed == table_script.table()
    assert "| `HOOKAGENT_URL` | `http://127.0.0.1:8000` |" in printed
