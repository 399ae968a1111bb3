"""Sentry payloads from the shared fixtures and the shapes providers vary."""

from __future__ import annotations

import json

import pytest

from hookagent.errors import PayloadError
from hookagent.sources import Ignored, parse_sentry
from tests.helpers import FIXTURES


def fixture(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


def test_seed_example() -> None:
    task = parse_sentry(fixture("sentry-seed-example.json"), resource=None, default_repo=None)
    assert task.repository == "myorg/myrepo"
    assert task.title == "TypeError in payment service"


def test_event_alert_carries_stack_culprit_and_link() -> None:
    task = parse_sentry(
        fixture("sentry-event-alert.json"), resource="event_alert", default_repo=None
    )
    assert task.repository == "acme/payments-api"
    assert task.title == "KeyError: 'currency'"
    assert "Culprit: app.billing.invoice in render_invoice" in task.prompt
    assert "app/billing/invoice.py:17 in render_invoice" in task.prompt
    assert "symbol = SYMBOLS[inv['currency']]" in task.prompt
    assert task.url is not None and task.url.startswith(
        "https://acme.sentry.io/organizations/acme/issues/"
    )
    assert task.external_id == "1170820250"


def test_legacy_plugin_top_level_event() -> None:
    task = parse_sentry(fixture("sentry-legacy-plugin.json"), resource=None, default_repo=None)
    assert task.repository == "acme/payments-api"
    assert task.title.startswith("TypeError: unsupported operand")
    assert "Release: payments@2.14.0" in task.prompt


def test_issue_resource_has_no_tags_so_the_default_repo_is_used() -> None:
    payload = fixture("sentry-issue-created.json")
    task = parse_sentry(payload, resource="issue", default_repo="acme/default")
    assert task.repository == "acme/default"
    assert "Exception: ZeroDivisionError: division by zero" in task.prompt
    with pytest.raises(PayloadError, match="no repository"):
        parse_sentry(payload, resource="issue", default_repo=None)


def test_tags_as_objects() -> None:
    payload = {"data": {"event": {"title": "x", "tags": [{"key": "repository", "value": "o/r"}]}}}
    assert parse_sentry(payload, resource=None, default_repo=None).repository == "o/r"


def test_other_actions_and_resources_start_nothing() -> None:
    resolved = {"action": "resolved", "data": {"issue": {"id": "1", "title": "x"}}}
    with pytest.raises(Ignored):
        parse_sentry(resolved, resource="issue", default_repo="o/r")
    with pytest.raises(Ignored):
        parse_sentry({"action": "created"}, resource="installation", default_repo="o/r")


def test_not_an_object() -> None:
    with pytest.raises(PayloadError, match="JSON object"):
        parse_sentry([1, 2], resource=None, default_repo="o/r")


def test_in_app_frames_come_first_and_breadcrumbs_follow() -> None:
    payload = fixture("sentry-event-alert.json")
    assert isinstance(payload, dict)
    event = payload["data"]["event"]
    event["exception"]["values"][0]["stacktrace"]["frames"].insert(
        0, {"filename": "django/core/handlers.py", "lineno": 9, "function": "inner"}
    )
    event["breadcrumbs"] = {"values": [
        {"timestamp": "2025-01-01T10:00:00Z", "category": "http", "level": "info",
         "data": {"method": "GET", "url": "/invoices/7", "status_code": 200}},
        {"timestamp": "2025-01-01T10:00:01Z", "category": "query", "message": "SELECT 1"},
    ]}  # fmt: skip
    task = parse_sentry(payload, resource="event_alert", default_repo=None)
    lines = task.prompt.splitlines()
    start = lines.index("In-app frames (most recent call last):")
    assert lines[start + 1 : start + 8] == [
        "  app/api/invoices.py:52 in get_invoice",
        "    return render_invoice(inv)",
        "  app/billing/invoice.py:17 in render_invoice",
        "    symbol = SYMBOLS[inv['currency']]",
        "Other frames (most recent call last):",
        "  django/core/handlers.py:9 in inner",
        "Breadcrumbs (oldest first):",
    ]
    assert lines[start + 8 : start + 10] == [
        "  [2025-01-01T10:00:00Z] http/info: GET /invoices/7 200",
        "  [2025-01-01T10:00:01Z] query: SELECT 1",
    ]
    assert task.level == "error"
