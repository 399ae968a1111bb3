"""Token configuration: entries, digests, names, the file, and what is refused at start-up."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from hookagent.api.auth import Principal, Role, load_tokens, parse_tokens
from hookagent.errors import ConfigError
from hookagent.settings import Settings

VIEWER = "viewer-token-0123456789"
OPERATOR = "operator-token-0123456789"
ADMIN = "admin-token-0123456789abc"


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_plain_named_and_hashed_entries() -> None:
    table = parse_tokens(f"viewer:{VIEWER}, operator:ops:{OPERATOR},admin:boss:sha256:{sha(ADMIN)}")
    assert len(table) == 3
    assert table.match(VIEWER) == Principal(f"viewer-{sha(VIEWER)[:6]}", Role.VIEWER)
    assert table.match(OPERATOR) == Principal("ops", Role.OPERATOR)
    assert table.match(ADMIN) == Principal("boss", Role.ADMIN)
    assert table.match("sha256:" + sha(ADMIN)) is None, "the digest itself is not a token"
    assert table.match(VIEWER + "x") is None and table.match("") is None
    assert VIEWER not in repr(table) and sha(VIEWER) not in repr(table)


def test_an_unnamed_hashed_entry_is_named_by_its_digest() -> None:
    table = parse_tokens(f"admin:sha256:{sha(ADMIN).upper()}")
    assert table.match(ADMIN) == Principal(f"admin-{sha(ADMIN)[:6]}", Role.ADMIN)


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.OPERATOR) and not Role.OPERATOR.allows(Role.ADMIN)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"root:{ADMIN}", "entry 1: role must be viewer, operator or admin (got 'root')"),
        (f"viewer:{VIEWER},{ADMIN}", "entry 2: role must be"),
        ("viewer:short-secret", "entry 1: the token is shorter than 16 characters"),
        ("operator:", "entry 1: the token is missing"),
        ("admin:sha256:abc123", "entry 1: sha256: must be followed by 64 hexadecimal digits"),
        (f"viewer:bad name:{VIEWER}", "entry 1: name 'bad name' must be letters"),
        (f"viewer:a:{VIEWER},admin:a:{ADMIN}", "the name 'a' is given twice"),
        (f"viewer:{VIEWER},admin:{VIEWER}", "the same token is listed twice"),
    ],
    ids=["role", "no-role", "short", "empty", "bad-digest", "bad-name", "dup-name", "dup-token"],
)
def test_malformed_entries_are_refused_naming_the_variable(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_tokens(text)
    message = caught.value.message
    assert message.startswith("HOOKAGENT_API_TOKENS: ") and says in message, message
    assert "\n" not in message
    for secret in (VIEWER, OPERATOR, ADMIN, "short-secret"):
        assert secret not in message, "a token is never echoed"


def settings_with(tmp_path: Path, **fields: object) -> Settings:
    return Settings(data_dir=tmp_path, **fields)  # type: ignore[arg-type]


def test_the_tokens_file_takes_newlines_commas_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# who may do what\nviewer:{VIEWER}, operator:ops:{OPERATOR}\n\n  # x\n")
    path.chmod(0o600)
    table = load_tokens(settings_with(tmp_path, api_tokens_file=path))
    assert table.match(OPERATOR) == Principal("ops", Role.OPERATOR) and len(table) == 2


def test_a_tokens_file_others_may_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"admin:{ADMIN}\n")
    path.chmod(0o620)
    with pytest.raises(ConfigError, match="writable by group or others; chmod 600 it"):
        load_tokens(settings_with(tmp_path, api_tokens_file=path))


def test_a_readable_file_warns_only_when_it_holds_plain_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"admin:sha256:{sha(ADMIN)}\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_tokens(settings_with(tmp_path, api_tokens_file=path))
        assert caplog.records == []
        path.write_text(f"admin:{ADMIN}\n")
        load_tokens(settings_with(tmp_path, api_tokens_file=path))
    [record] = caplog.records
    assert "readable by group or others" in record.getMessage()
    assert ADMIN not in record.getMessage()


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"api_tokens_file": "missing"}, "HOOKAGENT_API_TOKENS_FILE: cannot read"),
        ({"api_tokens_file": "empty"}, "HOOKAGENT_API_TOKENS_FILE: .* lists no tokens"),
        ({"api_tokens": " , "}, "HOOKAGENT_API_TOKENS: lists no tokens"),
        ({"api_tokens": f"admin:{ADMIN}", "api_tokens_file": "empty"}, "not both"),
    ],
    ids=["missing-file", "empty-file", "only-commas", "both"],
)
def test_unusable_token_settings_are_refused(
    tmp_path: Path, fields: dict[str, str], says: str
) -> None:
    (tmp_path / "empty").write_text("# nothing yet\n")
    (tmp_path / "empty").chmod(0o600)
    resolved: dict[str, object] = {
        k: tmp_path / v if k == "api_tokens_file" else SecretStr(v) for k, v in fields.items()
    }
    with pytest.raises(ConfigError, match=says):
        load_tokens(settings_with(tmp_path, **resolved))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "hookagent.example.com"])
def test_a_public_address_needs_tokens_or_an_explicit_anonymous(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_tokens(settings_with(tmp_path, host=host))
    message = caught.value.message
    assert "is not a loopback address and no API tokens are set" in message
    assert "HOOKAGENT_API_TOKENS" in message and "HOOKAGENT_ALLOW_ANONYMOUS=true" in message
    assert not load_tokens(settings_with(tmp_path, host=host, allow_anonymous=True))
    assert load_tokens(settings_with(tmp_path, host=host, api_tokens=SecretStr(f"admin:{ADMIN}")))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_serves_without_tokens(tmp_path: Path, host: str) -> None:
    assert not load_tokens(settings_with(tmp_path, host=host))
