"""Redaction: every credential shape, configured values, PEM blocks, JSON lines, no false alarms."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from hookagent.redact import MIN_SECRET_CHARS, Redactor
from hookagent.secret_values import build_redactor, secret_values
from hookagent.settings import Settings

# Fakes shaped like the real thing, built from pieces so no scanner mistakes them for leaks.
FAKE = "0123456789FakeTokenForTestsOnly0123456789"
GITHUB = {
    "classic": "ghp_" + FAKE[:36],
    "oauth": "gho_" + FAKE[:36],
    "app": "ghs_" + FAKE[:36],
    "user-to-server": "ghu_" + FAKE[:36],
    "refresh": "ghr_" + FAKE[:36],
    "fine-grained": "github_pat_" + "11FAKE0123_" + FAKE * 2,
}
ANTHROPIC = "sk-ant-api03-" + FAKE + "-fakeAA"
OPENAI = "sk-" + FAKE[:48]
OPENAI_PROJECT = "sk-proj-" + FAKE + "_fake-" + FAKE
AWS_ACCESS = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SESSION = "ASIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
SLACK = "xoxb-" + "000000000000-000000000000-" + "FakeFakeFakeFakeFake"
GOOGLE = "AIza" + "SyFAKE_fake-0123456789abcdefghijklm"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_LINES = [
    "-----BEGIN RSA PRIVATE KEY-----",
    "MIIEowIBAAKCAQEAfakefakefakeFAKEFAKEFAKE0123456789fakefakefakefake",
    "Zm9yIHRlc3RzIG9ubHkgLSBub3QgYSByZWFsIGtleSBhdCBhbGwgZmFrZWZha2U=",
    "-----END RSA PRIVATE KEY-----",
]
PEM = "\n".join(PEM_LINES)
PEM_BODY = PEM_LINES[1][:24]

SHAPES = [
    *((name, token, "github_token") for name, token in GITHUB.items()),
    ("anthropic", ANTHROPIC, "anthropic_key"),
    ("openai", OPENAI, "openai_key"),
    ("openai-project", OPENAI_PROJECT, "openai_key"),
    ("aws-access", AWS_ACCESS, "aws_access_key"),
    ("aws-session", AWS_SESSION, "aws_access_key"),
    ("slack", SLACK, "slack_token"),
    ("google", GOOGLE, "google_api_key"),
    ("jwt", JWT, "jwt"),
]


@pytest.mark.parametrize(("token", "kind"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
@pytest.mark.parametrize("template", ["{}", "key={}", 'export T="{}"', "Bearer {}.", "({})"])
def test_every_shape_becomes_its_marker(token: str, kind: str, template: str) -> None:
    redacted = Redactor().redact(f"found {template.format(token)} in the output")
    assert redacted == f"found {template.format(f'[REDACTED:{kind}]')} in the output"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f"aws_secret_access_key = {AWS_SECRET}",
            "aws_secret_access_key = [REDACTED:aws_secret_key]",
        ),
        (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", "AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_key]"),
        (
            f'{{"SecretAccessKey": "{AWS_SECRET}", "Expiration": "soon"}}',
            '{"SecretAccessKey": "[REDACTED:aws_secret_key]", "Expiration": "soon"}',
        ),
    ],
)
def test_aws_secret_key_after_its_name(line: str, expected: str) -> None:
    assert Redactor().redact(line) == expected


def test_url_credentials_keep_scheme_user_and_host() -> None:
    line = "fatal: unable to access 'https://x-access-token:hunter2hunter2@github.com/o/r.git/'"
    assert Redactor().redact(line) == (
        "fatal: unable to access "
        "'https://x-access-token:[REDACTED:url_credentials]@github.com/o/r.git/'"
    )
    assert Redactor().redact("redis://:p4ssw0rd@cache:6379/0") == (
        "redis://:[REDACTED:url_credentials]@cache:6379/0"
    )
    assert Redactor().redact("https://me@corp.example:p@ss:w0rd@host/x") == (
        "https://me@corp.example:[REDACTED:url_credentials]@host/x"
    )


def test_a_token_inside_a_url_is_gone_whichever_rule_fires() -> None:
    token = GITHUB["app"]
    redacted = Redactor([token]).redact(f"git push https://x-access-token:{token}@github.com/o/r")
    assert token not in redacted
    assert redacted.startswith("git push https://x-access-token:[REDACTED:")


def test_configured_values_in_every_encoding() -> None:
    value = 'pa"ss\\word/with spaces&more'
    redactor = Redactor([value])
    for form in (value, json.dumps(value)[1:-1], quote(value, safe="")):
        assert redactor.redact(f"before {form} after") == "before [REDACTED:secret] after"


def test_configured_value_inside_a_word_and_repeated() -> None:
    value = "hkcfg-Zx9Qw7Lm3Np5"
    assert Redactor([value]).redact(f"a{value}b {value}{value}") == (
        "a[REDACTED:secret]b [REDACTED:secret][REDACTED:secret]"
    )


def test_short_and_empty_values_are_not_scrubbed() -> None:
    redactor = Redactor(["a", "", "short", "x" * (MIN_SECRET_CHARS - 1)])
    text = "a short line xxxxxxx with words"
    assert redactor.redact(text) == text
    assert redactor.secret_count == 0


def test_multi_line_configured_value_is_scrubbed_line_by_line() -> None:
    value = "first-line-of-secret\nsecond-line-of-secret"
    lines = ["x first-line-of-secret", "second-line-of-secret y"]
    assert Redactor([value]).redact_lines(lines) == ["x [REDACTED:secret]", "[REDACTED:secret] y"]


def test_json_line_stays_valid_json() -> None:
    configured = 'cfg"secret\\value-123'
    event = {
        "type": "assistant",
        "text": f"use {GITHUB['classic']}, {configured} and https://u:{configured}@h/x",
        "env": {"OPENAI_API_KEY": OPENAI, "jwt": JWT, "aws_secret_access_key": AWS_SECRET},
        "url": "http://x:80",
        "mail": "a@b.example",
    }
    line = json.dumps(event)
    (redacted,) = Redactor([configured]).redact_lines([line])
    parsed = json.loads(redacted)
    assert parsed["text"] == (
        "use [REDACTED:github_token], [REDACTED:secret] and https://u:[REDACTED:secret]@h/x"
    )
    assert parsed["env"] == {
        "OPENAI_API_KEY": "[REDACTED:openai_key]",
        "jwt": "[REDACTED:jwt]",
        "aws_secret_access_key": "[REDACTED:aws_secret_key]",
    }
    assert parsed["url"] == "http://x:80"
    assert parsed["mail"] == "a@b.example"


def test_pem_block_over_lines_becomes_one_marker() -> None:
    lines = ["before", *PEM_LINES, "after"]
    assert Redactor().redact_lines(lines) == ["before", "[REDACTED:private_key]", "after"]
    assert Redactor().redact("\n".join(lines)) == "before\n[REDACTED:private_key]\nafter"


def test_pem_block_across_chunks_of_one_stream() -> None:
    stream = Redactor().for_run()
    assert stream.redact_lines(["key:", *PEM_LINES[:2]]) == ["key:", "[REDACTED:private_key]"]
    assert stream.in_block
    assert stream.redact_lines([PEM_LINES[2]]) == []
    assert stream.redact_lines([PEM_LINES[3] + " trailing", f"next {OPENAI}"]) == [
        " trailing",
        "next [REDACTED:openai_key]",
    ]
    assert not stream.in_block


def test_pem_block_that_never_ends_stays_redacted() -> None:
    stream = Redactor().for_run()
    out = stream.redact_lines(["x", *PEM_LINES[:3], "more output"])
    out += stream.redact_lines(["and more"])
    assert out == ["x", "[REDACTED:private_key]"]


@pytest.mark.parametrize("end", [PEM + "\n", PEM_LINES[0] + "\n" + PEM_LINES[1] + "\n"])
def test_pem_inside_one_json_line(end: str) -> None:
    stream = Redactor().for_run()
    line = json.dumps({"type": "tool_result", "content": f"cat id_rsa\n{end}", "ok": True})
    (redacted, after) = stream.redact_lines([line, "the next line"])
    event = json.loads(redacted)
    assert event["content"].rstrip("\n") == "cat id_rsa\n[REDACTED:private_key]"
    assert event["ok"] is True
    assert after == "the next line"
    assert not stream.in_block


def test_pem_on_one_line_with_spaces() -> None:
    flat = " ".join(PEM_LINES)
    assert Redactor().redact(f"key={flat};") == "key=[REDACTED:private_key];"


def test_a_line_with_a_newline_of_its_own() -> None:
    lines = [f"a\n{GITHUB['classic']}", "b"]
    assert Redactor().redact_lines(lines) == ["a\n[REDACTED:github_token]", "b"]


ORDINARY = [
    "task-1712345678901-abcdef12 cloned into workspace task-1712345678901-abcdef12",
    "a risk-free refactor of the disk-usage-monitor-2024-service-0123 module",
    "sk-learn-style-estimator-interface-without-digits",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (HEAD -> main, origin/main)",
    "request 3f2b1c9e-8a7d-4e6f-9b0a-1c2d3e4f5a6b finished in 12ms",
    base64.b64encode(b"hello world, this is perfectly normal text output").decode(),
    "cloning https://github.com/acme/payments-api.git and ssh://git@github.com/acme/x",
    "listening on http://localhost:8080/path?a=b@c and mail ops@example.com",
    '{"url":"http://x:80","email":"a@b.example","time":"12:30:45"}',
    "eyJhbGciOiJub25lIn0 is one base64 JSON segment, not a token",
    "MASIA AKIAfoo ghp_short github_pat_short xoxb-short AIzaShort",
    "-----BEGIN PUBLIC KEY----- is not a private key",
    "secret_access_key is documented in the README",
    "[REDACTED:github_token] stays as it is",
]


@pytest.mark.parametrize("line", ORDINARY)
def test_ordinary_lines_pass_untouched(line: str) -> None:
    redactor = Redactor(["hkcfg-Zx9Qw7Lm3Np5"])
    assert redactor.redact(line) == line
    assert redactor.redact_lines([line, line]) == [line, line]


def test_long_line_and_big_batch() -> None:
    """Correctness on sizes like real output (not a timing test)."""
    long_line = "x" * 1_000_000 + " " + GITHUB["classic"] + " end"
    assert Redactor().redact(long_line).endswith(" [REDACTED:github_token] end")
    batch = [f"line {i} of the agent output" for i in range(20_000)]
    batch[12_345] = f"token {SLACK}"
    out = Redactor(["hkcfg-Zx9Qw7Lm3Np5"]).redact_lines(batch)
    assert len(out) == len(batch)
    assert out[12_345] == "token [REDACTED:slack_token]"
    assert out[:12_345] == batch[:12_345] and out[12_346:] == batch[12_346:]


def test_secret_values_cover_every_secret_setting_and_the_environment() -> None:
    secret_fields = [
        name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
    ]
    assert "github_token" in secret_fields
    given = {name: f"value-of-{name}-0123456789" for name in secret_fields}
    settings = Settings(
        **given,  # type: ignore[arg-type]
        git_url_template="https://deploy:GitPassw0rd-xyz@git.example/{repo}.git",
        redis_url="redis://:RedisPassw0rd-xyz@cache:6379/0",
    )
    environ = {
        "ANTHROPIC_API_KEY": ANTHROPIC,
        "OPENAI_API_KEY": OPENAI,
        "GEMINI_API_KEY": GOOGLE,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "SLACK_BOT_TOKEN": SLACK,
        "PGPASSWORD": "pg-password-value",
        "HOME": "/home/someone",
        "PWD": "/srv/hookagent",
        "TOKENIZERS_PARALLELISM": "false-but-long",
        "GITHUB_TOKEN_FILE": "/run/secrets/github",
    }
    values = set(secret_values(settings, environ))
    assert set(given.values()) <= values
    assert {"GitPassw0rd-xyz", "RedisPassw0rd-xyz", "pg-password-value"} <= values
    assert {ANTHROPIC, OPENAI, GOOGLE, AWS_SECRET, SLACK} <= values
    assert not values & {"/home/someone", "/srv/hookagent", "false-but-long", "/run/secrets/github"}
    redacted = build_redactor(settings, environ).redact(" ".join(sorted(values)))
    assert set(redacted.split()) <= {f"[REDACTED:{k}]" for k in ("secret", "url_credentials")}


def test_token_as_the_user_of_the_git_url() -> None:
    token = "hkgit-Zx9Qw7Lm3Np5Rt8Vb2"
    settings = Settings(git_url_template=f"https://{token}@github.com/{{repo}}.git")
    assert token in secret_values(settings, {})
    assert secret_values(Settings(github_token=SecretStr("")), {}) == []


@pytest.mark.parametrize("lines", [PEM_LINES, PEM_LINES[:3]], ids=["whole", "no-end"])
def test_pem_printed_as_a_json_array_of_lines(lines: list[str]) -> None:
    """Found by the leak test: a key as separate JSON strings leaked its body."""
    line = json.dumps({"seen": lines, "next": "kept"})
    [redacted] = Redactor().for_run().redact_lines([line])
    assert json.loads(redacted) == {"seen": ["[REDACTED:private_key]"], "next": "kept"}


# A configured value with bytes that base64 turns into "+" and "/" (or "-" and "_").
BINARY_SECRET = "hkcfg-Zx9Qw7?>~Lm3Np5?>~Rt8"


def _encoded(data: bytes) -> list[tuple[str, str]]:
    """``data`` in every encoding a configured secret is looked for in, named."""
    std, url = base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()
    return [
        ("base64", std),
        ("base64-unpadded", std.rstrip("=")),
        ("base64url", url),
        ("base64url-unpadded", url.rstrip("=")),
        ("hex", data.hex()),
        ("HEX", data.hex().upper()),
    ]


@pytest.mark.parametrize("lead", [b"", b"A", b"AB", b"ABC", b"TOKEN=", b"x" * 7])
@pytest.mark.parametrize("tail", [b"", b"\n", b"z", b"zz", b" and more bytes"])
def test_configured_value_in_base64_and_hex_at_any_offset(lead: bytes, tail: bytes) -> None:
    """Alone (``echo -n $T | base64``) or inside a blob (``base64 .env``), both alphabets."""
    redactor = Redactor([BINARY_SECRET])
    assert "+" in base64.b64encode(BINARY_SECRET.encode()).decode()  # the alphabets differ
    for name, form in _encoded(lead + BINARY_SECRET.encode() + tail):
        redacted = redactor.redact(f'seen "{form}" here')
        assert "[REDACTED:secret]" in redacted, name
        # Left of the blob: the characters of lead and tail, and at most one character
        # (2 or 4 bits of the secret's first byte) before the marker.
        left = redacted.removeprefix('seen "').removesuffix('" here')
        before, _, after = left.partition("[REDACTED:secret]")
        hexed = name in ("hex", "HEX")
        assert len(before) <= (2 * len(lead) if hexed else -(-8 * len(lead) // 6) + 1), name
        assert len(after) <= (2 * len(tail) if hexed else -(-8 * len(tail) // 6) + 2), name


def test_every_configured_secret_in_base64_and_hex_is_redacted() -> None:
    settings = Settings(
        github_token=SecretStr(GITHUB["classic"]),
        jira_api_token=SecretStr(BINARY_SECRET),
        api_tokens=SecretStr("viewer:alice:hkview-0123456789abcdef"),
    )
    redactor = build_redactor(settings, {"ANTHROPIC_API_KEY": ANTHROPIC})
    for value in (GITHUB["classic"], BINARY_SECRET, "hkview-0123456789abcdef", ANTHROPIC):
        for name, form in _encoded(value.encode()):
            assert redactor.redact(f"x {form} y") == "x [REDACTED:secret] y", (value, name)


def test_ordinary_base64_and_hex_pass() -> None:
    redactor = Redactor([BINARY_SECRET])
    other = b"hkcfg-Zx9Qw7?>~Lm3Np5?>~Rt9 is another value"
    for _, form in _encoded(other[6:]):
        assert redactor.redact(form) == form


def test_each_api_token_is_a_secret_of_its_own() -> None:
    """The setting was one secret as a whole: one token printed alone went through."""
    digest = "sha256:" + "ab" * 32
    tokens = f"viewer:hkview-0123456789abcdef, operator:ops:hkops-0123456789abcdef,admin:{digest}"
    settings = Settings(api_tokens=SecretStr(tokens))
    values = secret_values(settings, {})
    assert {"hkview-0123456789abcdef", "hkops-0123456789abcdef"} <= set(values)
    assert not {"viewer", "operator", "ops", digest, "ab" * 32} & set(values)
    redactor = build_redactor(settings, {})
    assert redactor.redact("approve with hkops-0123456789abcdef") == (
        "approve with [REDACTED:secret]"
    )
    assert redactor.redact("the operator ops") == "the operator ops"


def test_tokens_from_the_file_are_secrets(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# team tokens\nviewer:ann:hkfile-0123456789abcdef\nadmin:hkroot-012345678\n")
    path.chmod(0o600)
    settings = Settings(api_tokens_file=path)
    redactor = build_redactor(settings, {})
    assert redactor.redact("hkfile-0123456789abcdef hkroot-012345678 # team tokens") == (
        "[REDACTED:secret] [REDACTED:secret] # team tokens"
    )


def test_an_unreadable_tokens_file_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(api_tokens_file=tmp_path / "missing")
    assert secret_values(settings, {}) == []
    assert "HOOKAGENT_API_TOKENS_FILE: cannot read" in caplog.text
