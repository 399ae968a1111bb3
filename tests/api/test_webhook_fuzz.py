"""The webhook routes on arbitrary bodies: always a JSON answer, never a 5xx.

Bodies are random bytes, random JSON and mutated fixtures, posted in-process to a real app
on a real Redis. Two known classes of input are kept out of the property and pinned by
the strict xfails at the end: lone surrogates and very deep nesting, both for ``_json``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from hookagent.settings import Settings
from tests.helpers import FIXTURES, REPO, app_client
from tests.strategies import Json, any_json, load_json_files, mutations

EXAMPLES = max(1, settings.default.max_examples // 2)  # 150 a route in the dev and ci profiles
DOCS = load_json_files(FIXTURES.glob("*.json"))
JSON = {"content-type": "application/json"}
JSON_TYPES = ["application/json", "application/json; charset=utf-8", None]
fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def client(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a default repository and approvers, so more deliveries reach intake."""
    own = settings.model_copy(
        update={"default_repo": REPO, "github_approvers": "lee-lead", "jira_approvers": "Lee Lead"}
    )
    async with app_client(own, redis) as http:
        yield http


def scrub(value: Json) -> Json:
    """``value`` with lone surrogates replaced (they reach ``_json``; see the xfail below)."""
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, list):
        return [scrub(item) for item in value]
    if isinstance(value, dict):
        return {scrub(key): scrub(item) for key, item in value.items()}
    return value


def encoded(value: Json, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode()


def bodies(source: str) -> st.SearchStrategy[bytes]:
    """Random bytes, random JSON, and (mostly) the source's fixtures mutated."""
    own = [doc for name, doc in DOCS.items() if name.startswith(source)]
    documents = (mutations(own) | mutations(own) | any_json).map(scrub)
    json_bodies = st.builds(encoded, documents, st.booleans())
    return st.binary(max_size=200) | json_bodies | json_bodies | json_bodies


def headers(content_type: str | None, **extra: str | None) -> dict[str, str]:
    found = {"content-type": content_type, **extra}
    return {name: value for name, value in found.items() if value is not None}


async def check(response: httpx.Response) -> None:
    """Below 500, JSON, and a 4xx carries exactly ``error`` and ``detail``."""
    event(f"HTTP {response.status_code}")  # pytest --hypothesis-show-statistics
    assert response.status_code < 500, response.text
    answer: Any = response.json()
    if response.status_code >= 400:
        assert isinstance(answer, dict) and set(answer) == {"error", "detail"}, answer
        assert isinstance(answer["error"], str)


@fuzz_settings
@given(
    body=bodies("sentry"),
    content_type=st.sampled_from(JSON_TYPES),
    resource=st.sampled_from([None, "issue", "event_alert", "installation"]),
)
async def test_sentry(
    client: httpx.AsyncClient, body: bytes, content_type: str | None, resource: str | None
) -> None:
    sent = headers(content_type, **{"sentry-hook-resource": resource})
    await check(await client.post("/webhooks/sentry", content=body, headers=sent))


@fuzz_settings
@given(body=bodies("jira"), content_type=st.sampled_from(JSON_TYPES))
async def test_jira(client: httpx.AsyncClient, body: bytes, content_type: str | None) -> None:
    await check(await client.post("/webhooks/jira", content=body, headers=headers(content_type)))


@fuzz_settings
@given(
    body=bodies("github"),
    content_type=st.sampled_from(JSON_TYPES),
    event=st.sampled_from(["issues", "issue_comment", "ping", "push"]),
)
async def test_github(
    client: httpx.AsyncClient, body: bytes, content_type: str | None, event: str
) -> None:
    sent = headers(content_type, **{"x-github-event": event})
    await check(await client.post("/webhooks/github", content=body, headers=sent))


# Both answer 500 today; ``_json`` in api/routes/webhooks.py is being taught to refuse them.
# strict: when that lands these pass, fail here, and the scrub above can go.
@pytest.mark.xfail(
    strict=True,
    raises=UnicodeEncodeError,
    reason="a lone surrogate (JSON \\ud800) reaches Redis, which cannot encode it; for _json",
)
async def test_lone_surrogate_is_refused(client: httpx.AsyncClient) -> None:
    body = {"data": {"event": {"title": "\ud800", "tags": [["repository", "acme/payments-api"]]}}}
    await check(await client.post("/webhooks/sentry", content=encoded(body, True), headers=JSON))


@pytest.mark.xfail(
    strict=True,
    raises=RecursionError,
    reason="json.loads raises RecursionError (not ValueError) past ~1000 levels; for _json",
)
async def test_deep_nesting_is_refused(client: httpx.AsyncClient) -> None:
    body = b"[" * 5000 + b"]" * 5000
    await check(await client.post("/webhooks/sentry", content=body, headers=JSON))
