"""Settings that parse their value: the Linear project map."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hookagent.settings import Settings, describe_errors


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


@pytest.mark.parametrize("raw", ["Payments", "=acme/x", "Payments=", '{"a": 1}', "{nope", "[]"])
def test_a_bad_linear_project_map_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(linear_projects=raw)
    [line] = describe_errors(refused.value)
    assert line.startswith("HOOKAGENT_LINEAR_PROJECTS: ")
