"""The secret scan on real diffs of hookagent's own git: added lines, odd names, binaries."""

from __future__ import annotations

from pathlib import Path

from hookagent.redact import Redactor
from hookagent.worker.secretscan import Finding, scan_diff
from hookagent.worker.workspace import Workspaces
from tests.helpers import REPO

TASK = "task-1764040000123-0a1b2c3d4e5f"
TOKEN = "ghp_" + "Zx9" * 12
CONFIGURED = "configured-deploy-password-42"


async def change(tmp_path: Path, remotes: Path, files: dict[str, bytes]) -> str:
    """The diff hookagent computes after ``files`` are written into a fresh workspace."""
    spaces = Workspaces(tmp_path / "ws", url_template=f"file://{remotes}/{{repo}}.git", timeout=30)
    path = await spaces.clone(TASK, REPO)
    for name, data in files.items():
        if data:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
        else:
            (path / name).unlink()
    await spaces.checkout(path).stage()
    return await spaces.checkout(path).diff("main")


async def test_added_lines_names_and_binaries_are_scanned(tmp_path: Path, remotes: Path) -> None:
    files = {
        "README.md": b"",  # deleted: its removed lines are not the change
        "app.py": b"def total(xs):\n    return 0\n++ GH = '" + TOKEN.encode() + b"'\n",
        'odd "dir"/t\tab.txt': b"x\n" + CONFIGURED.encode() + b"\n",
        "caf\u00e9/key.pem".encode().decode(): b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n",
        "blob.bin": b"\x00\x01\x02 " + TOKEN.encode() + b" \xff\n",
        f"names/{TOKEN}.txt": b"nothing here\n",
        "tests/fixtures/ok.txt": TOKEN.encode() + b"\n",
    }
    diff = await change(tmp_path, remotes, files)
    redactor = Redactor([CONFIGURED])
    found = scan_diff(diff, redactor, lambda path: path.startswith("tests/fixtures/"))
    assert sorted(found, key=lambda f: f.path) == [
        Finding("app.py", 3, "github_token"),
        Finding("blob.bin", 1, "github_token"),
        Finding("café/key.pem", 1, "private_key"),
        # The name holds the token: shown redacted, at line 0.
        Finding("names/[REDACTED:github_token].txt", 0, "github_token"),
        Finding('odd "dir"/t\tab.txt', 2, "secret"),
    ]
    assert Finding("app.py", 3, "github_token").describe() == (
        "refused to push: app.py:3 holds a github_token"
    )
    assert scan_diff(diff, redactor, lambda path: True) == []


async def test_a_clean_change_has_no_finding(tmp_path: Path, remotes: Path) -> None:
    diff = await change(tmp_path, remotes, {"app.py": b"def total(xs):\n    return 0\n"})
    assert "+    return 0" in diff
    assert scan_diff(diff, Redactor([CONFIGURED])) == []


def test_findings_name_each_kind_and_where_it_is() -> None:
    text = f"a {TOKEN} b {CONFIGURED} -----BEGIN EC PRIVATE KEY-----"
    found = Redactor([CONFIGURED]).findings(text)
    assert [(text[s:e], kind) for s, e, kind in found] == [
        (TOKEN, "github_token"),
        (CONFIGURED, "secret"),
        ("-----BEGIN EC PRIVATE KEY-----", "private_key"),
    ]
