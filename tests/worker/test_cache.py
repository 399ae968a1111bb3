"""Per-repository caches: their names, the LRU size cap, ``hookagent cache list|clear``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hookagent.cli.main import main
from hookagent.errors import WorkspaceError
from hookagent.worker.cache import Caches, cache_environment, cache_name, repository_of

MIB = 2**20


@pytest.mark.parametrize(
    ("repo", "forge", "name"),
    [
        ("acme/api", "github", "acme+api"),
        ("Acme/API", "github", "acme+api"),
        ("group/sub/proj", "gitlab", "gitlab~group+sub+proj"),
    ],
)
def test_each_repository_has_its_own_name(repo: str, forge: str, name: str) -> None:
    assert cache_name(repo, forge) == name
    assert repository_of(name) == (forge, repo.lower())


@pytest.mark.parametrize("repo", ["../etc", "acme/..", "acme", "acme/.hidden", "a/b c", "a/b+c"])
def test_a_name_that_could_escape_or_collide_is_refused(repo: str) -> None:
    with pytest.raises(WorkspaceError):
        cache_name(repo)


def test_the_package_managers_point_into_the_cache() -> None:
    assert cache_environment(Path("/home/agent/.cache")) == {
        "XDG_CACHE_HOME": "/home/agent/.cache",
        "npm_config_cache": "/home/agent/.cache/npm",
        "PIP_CACHE_DIR": "/home/agent/.cache/pip",
        "UV_CACHE_DIR": "/home/agent/.cache/uv",
    }


async def fill(caches: Caches, repo: str, mib: int, used: float) -> Path:
    async with caches.use(repo) as path:
        (path / "blob").write_bytes(os.urandom(mib * MIB))
    stamp = path.parent / ".used" / path.name
    os.utime(stamp, (used, used))
    return path


async def test_the_cap_evicts_the_least_recently_used(tmp_path: Path) -> None:
    caches = Caches(tmp_path / "cache", max_bytes=5 * MIB)
    old = await fill(caches, "acme/old", 2, 1_000)
    middle = await fill(caches, "acme/middle", 2, 2_000)
    new = await fill(caches, "acme/new", 2, 3_000)
    assert [e.repository for e in caches.entries()] == ["acme/old", "acme/middle", "acme/new"]
    assert caches.evict() == ["acme/old"]
    assert not old.exists() and middle.exists() and new.exists()
    assert caches.evict() == [], "under the cap now"


async def test_a_cache_in_use_is_never_evicted(tmp_path: Path) -> None:
    caches = Caches(tmp_path / "cache", max_bytes=1 * MIB)
    await fill(caches, "acme/idle", 2, 2_000)
    busy = await fill(caches, "acme/busy", 2, 1_000)  # the older one, but in use
    async with caches.use("acme/busy"):
        assert caches.evict() == ["acme/idle"]
        assert busy.exists()
        assert caches.clear("acme/busy") == ([], ["acme/busy"])
    assert caches.evict() == ["acme/busy"]


async def test_a_symlink_in_a_cache_is_measured_and_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(os.urandom(MIB))
    caches = Caches(tmp_path / "cache", max_bytes=1)
    async with caches.use("acme/api") as path:
        (path / "link").symlink_to(outside)
    [entry] = caches.entries()
    assert entry.size < MIB, "the link's target is not counted"
    assert caches.evict() == ["acme/api"]
    assert (outside / "keep").is_file(), "nothing behind the link was deleted"


async def test_the_cache_command_lists_and_clears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOOKAGENT_DATA_DIR", str(tmp_path / "data"))
    caches = Caches(tmp_path / "data" / "cache")
    await fill(caches, "acme/api", 1, 1_000)
    await fill(caches, "acme/web", 1, 2_000)
    assert main(["cache", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["acme/api", "acme/web"]
    assert "1.0 MiB" in listed[0] and "last used 1970-01-01 00:16:40 UTC" in listed[0]
    spares = tmp_path / "data" / "spares"
    for name in ("acme+api", "acme+web"):
        (spares / name / "tree").mkdir(parents=True)
    assert main(["cache", "clear", "acme/api"]) == 0
    assert capsys.readouterr().out == "cleared acme/api\ncleared the spare checkout acme+api\n"
    assert [p.name for p in spares.iterdir()] == ["acme+web"]
    assert [e.repository for e in caches.entries()] == ["acme/web"]
    assert main(["cache", "clear"]) == 0
    assert caches.entries() == []
    assert list(spares.iterdir()) == [], "every spare checkout too"
    assert main(["cache", "list"]) == 0
    assert "no caches in" in capsys.readouterr().out
