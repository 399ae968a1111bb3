"""API tokens: parsed from ``HOOKAGENT_API_TOKENS`` (or its file), kept only as digests.

An entry is ``role:token`` or ``role:name:token``; the token may be written ``sha256:<hex>``
so the configuration holds no secret. Entries are separated by commas or newlines; in the
file, lines starting with ``#`` are comments (split by ``settings.split_api_tokens``, which
the redactor reads them with too). In memory only SHA-256 digests are kept, and a presented
token is compared with every digest in constant time. The file is read once, at start.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from hookagent.errors import ConfigError
from hookagent.settings import Settings, is_loopback, split_api_tokens

log = logging.getLogger(__name__)

MIN_TOKEN_CHARS = 16
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKENS_VAR = "HOOKAGENT_API_TOKENS"
FILE_VAR = "HOOKAGENT_API_TOKENS_FILE"


class Role(enum.StrEnum):
    """What a token may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """0 for viewer, 1 for operator, 2 for admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the token's name (the task log's actor) and its role."""

    name: str
    role: Role


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: Principal
    plain: bool  # written as the token itself, not as sha256:<hex>


class TokenTable:
    """The configured tokens as digests; empty means no tokens (anonymous, loopback only)."""

    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = tuple(entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        names = ", ".join(f"{e.principal.role}:{e.principal.name}" for e in self._entries)
        return f"TokenTable({names})"

    @property
    def holds_plain_tokens(self) -> bool:
        """Whether any entry was written as the token itself rather than its digest."""
        return any(entry.plain for entry in self._entries)

    def match(self, token: str) -> Principal | None:
        """The principal of ``token``, or None; every digest is compared, in constant time."""
        return self.match_digest(token_digest(token))

    def match_digest(self, presented: bytes) -> Principal | None:
        """The principal of the token whose SHA-256 is ``presented``, or None."""
        found: Principal | None = None
        for entry in self._entries:
            # No early exit: how long this takes says nothing about which entry matched.
            if hmac.compare_digest(presented, entry.digest):
                found = entry.principal
        return found


def token_digest(token: str) -> bytes:
    """The SHA-256 a token is known by."""
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(text: str, *, source: str = TOKENS_VAR) -> TokenTable:
    """The entries of ``text`` (commas or newlines; ``#`` lines are comments).

    Raises :class:`ConfigError` naming ``source`` and the entry's position, never its token.
    """
    entries: list[_Entry] = []
    for number, (role, name, token) in enumerate(split_api_tokens(text), 1):
        try:
            entries.append(_parse_entry(role, name, token))
        except ValueError as exc:
            raise ConfigError(f"{source}: entry {number}: {exc}") from None
    _refuse_duplicates(entries, source)
    return TokenTable(entries)


def _parse_entry(role_text: str, name: str | None, token: str) -> _Entry:
    try:
        role = Role(role_text.lower())
    except ValueError:
        raise ValueError(
            f"role must be viewer, operator or admin (got {role_text[:20]!r}); "
            "write role:token or role:name:token"
        ) from None
    digest = _digest_of(token)
    if name is None:
        name = f"{role}-{digest.hex()[:6]}"
    elif not _NAME.match(name):
        raise ValueError(
            f"name {name[:64]!r} must be letters, digits and . _ @ - (at most 64 characters)"
        )
    principal = Principal(name=name, role=role)
    return _Entry(digest=digest, principal=principal, plain=not token.startswith("sha256:"))


def _digest_of(token: str) -> bytes:
    if token.startswith("sha256:"):
        hexdigest = token.removeprefix("sha256:")
        if not _HEX_DIGEST.match(hexdigest):
            raise ValueError("sha256: must be followed by 64 hexadecimal digits")
        return bytes.fromhex(hexdigest)
    if not token:
        raise ValueError("the token is missing; write role:token or role:name:token")
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"the token is shorter than {MIN_TOKEN_CHARS} characters")
    return hashlib.sha256(token.encode()).digest()


def _refuse_duplicates(entries: list[_Entry], source: str) -> None:
    names: set[str] = set()
    digests: set[bytes] = set()
    for entry in entries:
        if entry.principal.name in names:
            raise ConfigError(f"{source}: the name {entry.principal.name!r} is given twice")
        if entry.digest in digests:
            raise ConfigError(f"{source}: the same token is listed twice")
        names.add(entry.principal.name)
        digests.add(entry.digest)


def read_tokens_file(path: Path) -> TokenTable:
    """The tokens in ``path``; refused if others may write it, a warning if they may read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{FILE_VAR}: cannot read {path}: {reason}") from None
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        # Whoever can write the file can give themselves an admin token.
        raise ConfigError(f"{FILE_VAR}: {path} is writable by group or others; chmod 600 it")
    table = parse_tokens(text, source=FILE_VAR)
    if not table:
        raise ConfigError(f"{FILE_VAR}: {path} lists no tokens")
    if mode & (stat.S_IRGRP | stat.S_IROTH) and table.holds_plain_tokens:
        log.warning(
            "%s is readable by group or others and holds plain tokens; "
            "chmod 600 it or write the tokens as sha256:<hex>",
            path,
        )
    return table


def load_tokens(settings: Settings) -> TokenTable:
    """The tokens configured in ``settings``; raises :class:`ConfigError` if unusable.

    Also refuses to serve a non-loopback address without tokens (unless
    ``HOOKAGENT_ALLOW_ANONYMOUS=true``): an approval makes an agent push code.
    """
    if settings.api_tokens is not None and settings.api_tokens_file is not None:
        raise ConfigError(f"{TOKENS_VAR}: set it or {FILE_VAR}, not both")
    if settings.api_tokens_file is not None:
        table = read_tokens_file(settings.api_tokens_file)
    elif settings.api_tokens is not None:
        table = parse_tokens(settings.api_tokens.get_secret_value())
        if not table:
            raise ConfigError(f"{TOKENS_VAR}: lists no tokens; write role:token entries")
    else:
        table = TokenTable([])
    if not table and not settings.allow_anonymous and not is_loopback(settings.host):
        raise ConfigError(
            f"HOOKAGENT_HOST: {settings.host or '(all addresses)'} is not a loopback address "
            f"and no API tokens are set; set {TOKENS_VAR} (role:token, …) or bind 127.0.0.1 "
            "(HOOKAGENT_ALLOW_ANONYMOUS=true serves it without tokens)"
        )
    return table
