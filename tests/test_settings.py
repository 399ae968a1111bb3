"""Settings that parse their value: the Linear project map."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hookagent.settings import Settings, describe_errors, is_loopback


@pytest.mark.parametrize(
    "raw",
    [
        "Payments=acme/payments-api, Store Front = acme/storefront",
        '{"Payments": "acme/payments-api", "Store Front": "acme/storefront"}',
    ],
)
def test_linear_projects_as_pairs_or_json(raw: str) -> None:
    assert Settings(linear_projects=raw).linear_project_map == {
        "payments": "acme/payments-api",
        "store front": "acme/storefront",
    }


@pytest.mark.parametrize(
    "raw",
    [
        "Payments",
        "=acme/x",
        "Payments=",
        '{"a": 1}',
        "{nope",
        "[]",
        # Not owner/name: refused at startup, not at the first issue.
        "Payments=acme",
        "Payments=acme/x/y",
        '{"Payments": "acme payments"}',
    ],
)
def test_a_bad_linear_project_map_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(linear_projects=raw)
    [line] = describe_errors(refused.value)
    assert line.startswith("HOOKAGENT_LINEAR_PROJECTS: ")


@pytest.mark.parametrize("label", ["", "  "])
def test_an_empty_linear_label_is_refused(label: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(linear_label=label)
    [line] = describe_errors(refused.value)
    assert line.startswith("HOOKAGENT_LINEAR_LABEL: ")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("LOCALHOST", True), (" LocalHost ", True),
     ("::ffff:127.0.0.1", True), ("[::FFFF:127.0.0.2]", True), ("0:0:0:0:0:0:0:1", True),
     ("", False), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
     ("::ffff:10.0.0.5", False), ("128.0.0.1", False), ("localhost.example", False),
     ("hookagent.internal", False), ("[127.0.0.1", False)],
)  # fmt: skip
def test_one_loopback_check_for_settings_and_the_api(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    # Bound there, unsigned deliveries are accepted exactly when the host is loopback.
    assert Settings(host=host).signatures_required is not loopback
