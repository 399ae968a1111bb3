"""The webhook routes on arbitrary bodies: always a JSON answer, never a 5xx.

Bodies are random bytes, random JSON and mutated fixtures (lone surrogates included),
posted in-process to a real app on a real Redis; very deep nesting is pinned at the end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.settings import Settings
from tests.helpers import FIXTURES, REPO, app_client
from tests.strategies import Json, any_json, load_json_files, mutations

LINEAR_SECRET = "lin_wh_fuzz_secret_0123456789"

EXAMPLES = max(1, settings().max_examples // 2)  # 150 a route in the dev and ci profiles
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
        update={
            "default_repo": REPO,
            "github_approvers": "lee-lead",
            "jira_approvers": "5b10ac8d82e05b22cc7d4ef6",
            "gitlab_approvers": "lee-lead",
            "linear_approvers": "3b3b3b3b-0000-4000-8000-000000000033",
        }
    )
    async with app_client(own, redis) as http:
        yield http


def encoded(value: Json, ascii_only: bool) -> bytes:
    # surrogatepass: a lone surrogate goes out as raw bytes, which json.loads takes back.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def bodies(source: str) -> st.SearchStrategy[bytes]:
    """Random bytes, random JSON, and (mostly) the source's fixtures mutated."""
    own = [doc for name, doc in DOCS.items() if name.startswith(source)]
    documents = mutations(own) | mutations(own) | any_json
    json_bodies = st.builds(encoded, documents, st.booleans())
    return st.binary(max_size=200) | json_bodies | json_bodies | json_bodies


def headers(content_type: str | None, **extra: str | None) -> dict[str, str]:
    found = {"content-type": content_type, **extra}
    return {name: value for name, value in found.items() if value is not None}


async def check(response: httpx.Response, *, record: bool = True) -> None:
    """Below 500, JSON, and a 4xx carries exactly ``error`` and ``detail``."""
    if record:
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


@fuzz_settings
@given(
    body=bodies("gitlab"),
    content_type=st.sampled_from(JSON_TYPES),
    event=st.sampled_from(["Issue Hook", "Note Hook", "Push Hook"]),
)
async def test_gitlab(
    client: httpx.AsyncClient, body: bytes, content_type: str | None, event: str
) -> None:
    sent = headers(content_type, **{"x-gitlab-event": event})
    await check(await client.post("/webhooks/gitlab", content=body, headers=sent))


@fuzz_settings
@given(
    body=bodies("linear"),
    content_type=st.sampled_from(JSON_TYPES),
    event=st.sampled_from(["Issue", "Comment", "Project"]),
)
async def test_linear(
    client: httpx.AsyncClient, body: bytes, content_type: str | None, event: str
) -> None:
    sent = headers(content_type, **{"linear-event": event, "linear-delivery": "fuzz"})
    await check(await client.post("/webhooks/linear", content=body, headers=sent))


@pytest.fixture
async def signed(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a Linear secret, so deliveries go through the signature and timestamp."""
    own = settings.model_copy(update={"linear_webhook_secret": SecretStr(LINEAR_SECRET)})
    async with app_client(own, redis) as http:
        yield http


def stamped(document: Json) -> Json:
    """``document`` sent now: a fixture's own ``webhookTimestamp`` is long past (a 401)."""
    if isinstance(document, dict):
        return {**document, "webhookTimestamp": int(time.time() * 1000)}
    return document


def fresh_linear_bodies() -> st.SearchStrategy[bytes]:
    """Linear bodies, most of them mutated fixtures stamped with the time they are drawn."""
    own = [doc for name, doc in DOCS.items() if name.startswith("linear")]
    fresh = st.builds(encoded, mutations(own).map(stamped), st.booleans())
    return fresh | fresh | bodies("linear")


async def test_a_fresh_signed_fixture_gets_past_the_signature_and_timestamp(
    signed: httpx.AsyncClient,
) -> None:
    """What the fuzzing below relies on: a stamped, signed fixture is not a 401."""
    for name in ("linear-issue-create", "linear-comment-approve"):
        body = encoded(stamped(DOCS[name]), True)
        right = hmac.new(LINEAR_SECRET.encode(), body, hashlib.sha256).hexdigest()
        sent = {"content-type": "application/json", "linear-signature": right}
        answer = await signed.post("/webhooks/linear", content=body, headers=sent)
        assert answer.status_code != 401, answer.text


@fuzz_settings
@given(body=fresh_linear_bodies(), signature=st.sampled_from(["", "0" * 64, "zz", "\u00e9"]))
async def test_linear_signed(signed: httpx.AsyncClient, body: bytes, signature: str) -> None:
    """A wrong signature is a JSON 401; a right one reaches the timestamp check, then intake."""
    right = hmac.new(LINEAR_SECRET.encode(), body, hashlib.sha256).hexdigest()
    for header in (signature, right):
        sent = [(b"content-type", b"application/json"), (b"linear-signature", header.encode())]
        await check(await signed.post("/webhooks/linear", content=body, headers=sent))


# Both answered 500 once (found by this fuzzing): a lone surrogate reached Redis, and
# json.loads raised RecursionError past ~1000 levels.
async def test_lone_surrogate_is_accepted(client: httpx.AsyncClient) -> None:
    body = {"data": {"event": {"title": "\ud800", "tags": [["repository", "acme/payments-api"]]}}}
    response = await client.post("/webhooks/sentry", content=encoded(body, True), headers=JSON)
    await check(response, record=False)
    assert response.status_code == 202, response.text


async def test_deep_nesting_is_refused(client: httpx.AsyncClient) -> None:
    body = b"[" * 5000 + b"]" * 5000
    response = await client.post("/webhooks/sentry", content=body, headers=JSON)
    await check(response, record=False)
    assert response.status_code == 400 and response.json()["error"] == "too_deep"
