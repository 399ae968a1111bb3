"""Access control end to end: every route by every role, tickets, WebSocket, Origin, actor."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from fastapi import FastAPI, WebSocket
from pydantic import SecretStr
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from hookagent.api import create_app
from hookagent.api.auth import RuleBook, served
from hookagent.models import NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import app_client, move_to

VIEWER = "viewer-token-0123456789"
OPERATOR = "operator-token-0123456789"
ADMIN = "admin-token-0123456789abc"
TOKENS = {"viewer": VIEWER, "operator": OPERATOR, "admin": ADMIN}
FOREIGN = "https://evil.example"

# Written out by hand, independently of app.py's rule book: the least role each route
# needs (None: no token). A route in /openapi.json missing here fails the matrix.
EXPECTED: dict[str, str | None] = {
    "POST /webhooks/sentry": None,
    "POST /webhooks/jira": None,
    "POST /webhooks/github": None,
    "POST /webhooks/gitlab": None,
    "POST /webhooks/linear": None,
    "POST /webhooks/slack/interactions": None,
    "GET /tasks/": "viewer",
    "GET /tasks/events": "viewer",
    "GET /tasks/counts": "viewer",
    "GET /ui/meta": None,
    # Open in the rule book: they check the token (or the session) themselves.
    "POST /ui/session": None,
    "DELETE /ui/session": None,
    "GET /ui/me": None,
    "GET /tasks/{task_id}": "viewer",
    "GET /tasks/{task_id}/progress": "viewer",
    "GET /tasks/{task_id}/status": "viewer",
    "GET /tasks/{task_id}/logs": "viewer",
    "GET /tasks/{task_id}/logs/stream": "viewer",
    "POST /tasks/{task_id}/approve": "operator",
    "POST /tasks/{task_id}/reject": "operator",
    "POST /tasks/{task_id}/revise": "operator",
    "POST /tasks/{task_id}/cancel": "operator",
    "POST /tasks/{task_id}/retry": "operator",
    "GET /search": "viewer",
    "POST /auth/ticket": "viewer",
    "GET /healthz": None,
    "GET /readyz": None,
    "GET /workers": "viewer",
    "GET /policies": "viewer",
    "GET /metrics": "viewer",
    "GET /stats": "viewer",
}
RANK = {"viewer": 0, "operator": 1, "admin": 2}
# Routes open in the rule book that refuse a caller by their own check: (route, caller).
OWN_REFUSALS = {("GET /ui/me", "anonymous"): "unauthorized"}
CALLERS = ["anonymous", "viewer", "operator", "admin", "foreign-origin"]


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def secured(settings: Settings) -> Settings:
    """The test's settings with three tokens: a plain one, a named one, a named digest."""
    tokens = f"viewer:{VIEWER},operator:ops:{OPERATOR},admin:boss:sha256:{sha(ADMIN)}"
    return settings.model_copy(update={"api_tokens": SecretStr(tokens)})


@pytest.fixture
async def http(secured: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of an app that has tokens."""
    async with app_client(secured, redis) as client:
        yield client


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


async def finished_task(store: Store) -> str:
    """A completed task: every handler runs on it, and streams end at once."""
    new = NewTask(source="sentry", repository="acme/x", title="t", prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    await move_to(store, task_id, TaskStatus.COMPLETED, reason="done")
    return task_id


def headers_of(caller: str) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller == "foreign-origin":
        return bearer("admin") | {"Origin": FOREIGN}
    return bearer(caller)


def expected_refusal(method: str, needs: str | None, caller: str) -> int | None:
    """The 401/403 ``caller`` must get, or None when it must get past access control."""
    if caller == "foreign-origin":
        return 403 if method in ("POST", "DELETE") else None
    if needs is None:
        return None
    if caller == "anonymous":
        return 401
    return 403 if RANK[caller] < RANK[needs] else None


async def test_every_route_answers_every_role_as_its_rule_says(live: str, store: Store) -> None:
    # A real server: the in-process transport buffers whole bodies, and the board's event
    # stream never ends.
    async with httpx.AsyncClient(base_url=f"http://{live}", timeout=10) as http:
        await check_matrix(http, store)


async def check_matrix(http: httpx.AsyncClient, store: Store) -> None:
    """Every route of the OpenAPI description by every caller, against EXPECTED."""
    spec = (await http.get("/openapi.json")).json()
    operations = {
        f"{method.upper()} {path}": op
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    assert set(operations) == set(EXPECTED), "a route without an expected role (or gone)"
    task_id = await finished_task(store)
    checked = 0
    for key, op in sorted(operations.items()):
        method, path = key.split(" ", 1)
        url = path.replace("{task_id}", task_id)
        query = {p["name"]: "x" for p in op.get("parameters", []) if p["in"] == "query"}
        query = {k: v for k, v in query.items() if k == "q"}  # the only required one
        body: dict[str, object] | None = {} if path.startswith("/webhooks/") else None
        for caller in CALLERS:
            request = http.build_request(
                method, url, params=query, headers=headers_of(caller), json=body
            )
            # Streams that never end (the board's events) are judged by their head alone.
            response = await http.send(request, stream=True)
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                await response.aclose()
            else:
                await response.aread()
            refusal = expected_refusal(method, EXPECTED[key], caller)
            got = (key, caller, response.status_code)
            if refusal is None:
                # Past access control; a webhook may still refuse its own signature (401).
                refused_by = (
                    response.json().get("error") if response.status_code in (401, 403) else None
                )
                allowed = (None, "bad_signature", OWN_REFUSALS.get((key, caller)))
                assert refused_by in allowed, (*got, response.text)
                # /readyz answers 503 by design here: no worker runs in this test.
                assert response.status_code < 500 or key == "GET /readyz", (*got, response.text)
            else:
                assert response.status_code == refusal, (*got, response.text)
                error = {401: "unauthorized", 403: "forbidden"}[refusal]
                if caller == "foreign-origin":
                    error = "forbidden_origin"
                assert response.json()["error"] == error, got
            if refusal == 401:
                assert response.headers["www-authenticate"] == 'Bearer realm="hookagent"'
            checked += 1
    assert checked == len(EXPECTED) * len(CALLERS)


async def test_an_unknown_or_malformed_token_is_a_401_saying_invalid_token(
    http: httpx.AsyncClient,
) -> None:
    for value in (
        f"Bearer {VIEWER}x",
        f"Basic {VIEWER}",
        "Bearer",
        VIEWER,
        f"Bearer sha256:{sha(VIEWER)}",
    ):
        response = await http.get("/tasks/", headers={"Authorization": value})
        assert response.status_code == 401, value
        challenge = response.headers["www-authenticate"]
        assert challenge == 'Bearer realm="hookagent", error="invalid_token"'
        assert VIEWER not in response.text


async def test_docs_openapi_and_health_stay_open(http: httpx.AsyncClient) -> None:
    for path in (
        "/healthz",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/static/docs/swagger-ui.css",
        "/static/redoc/redoc.standalone.js",
    ):
        assert (await http.get(path)).status_code == 200, path


def test_every_route_of_the_app_has_a_rule(secured: Settings) -> None:
    app = create_app(secured)
    rules: RuleBook = app.state.rules
    keys = served(app)
    assert "WEBSOCKET /tasks/{task_id}/logs/ws" in keys and "MOUNT /static/docs" in keys
    assert len(keys) > len(EXPECTED)
    assert rules.missing(app) == []
    for key, needs in EXPECTED.items():
        rule = rules.rule(key)
        assert rule is not None and (rule.role.value if rule.role else None) == needs, key


def test_a_route_added_without_a_rule_is_found(secured: Settings) -> None:
    app = create_app(secured)

    @app.get("/extra")
    async def extra() -> dict[str, str]:
        return {}

    @app.websocket("/extra/ws")
    async def extra_ws(websocket: WebSocket) -> None:
        await websocket.close()

    assert app.state.rules.missing(app) == ["GET /extra", "WEBSOCKET /extra/ws"]


async def test_without_tokens_the_loopback_server_is_anonymous_admin(
    client: httpx.AsyncClient, store: Store
) -> None:
    task_id = await finished_task(store)
    assert (await client.get("/tasks/")).status_code == 200
    retried = await client.post(f"/tasks/{task_id}/retry", headers=bearer("viewer"))
    assert retried.status_code == 409, "a token is not needed, nor checked"


async def test_the_log_names_the_token_not_the_body(http: httpx.AsyncClient, store: Store) -> None:
    new = NewTask(source="sentry", repository="acme/x", title="t", prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    await move_to(store, task_id, TaskStatus.FAILED, reason="broke")
    pending = (await store.tasks.create(new)).task_id
    await move_to(store, pending, TaskStatus.PENDING_APPROVAL, fields={"plan": "the plan"})
    response = await http.post(
        f"/tasks/{pending}/approve",
        json={"actor": "mallory", "comment": "go"},
        headers=bearer("operator"),
    )
    assert response.status_code == 200, response.text
    retried = await http.post(f"/tasks/{task_id}/retry", headers=bearer("admin"))
    assert retried.status_code == 200, retried.text
    entries, _ = await store.logs.read(pending, offset=0, limit=-1)
    assert "[system] status approved: approved by ops: go" in [e.message for e in entries]
    assert not any("mallory" in e.message for e in entries)
    assert (await store.tasks.get(pending)).approver == "ops"
    entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
    assert any(
        e.message.startswith("[system] status ")
        and "retry of the" in e.message
        and "by boss" in e.message
        for e in entries
    )


async def ticket_for(http: httpx.AsyncClient, role: str) -> str:
    response = await http.post("/auth/ticket", headers=bearer(role))
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 30
    assert response.headers["cache-control"] == "no-store"
    ticket: str = response.json()["ticket"]
    return ticket


async def test_a_ticket_opens_one_stream_once(
    http: httpx.AsyncClient, store: Store, redis: Redis
) -> None:
    task_id = await finished_task(store)
    url = f"/tasks/{task_id}/logs/stream"
    ticket = await ticket_for(http, "viewer")
    key = store.tickets.key_of(ticket)
    assert ticket not in key, "Redis holds the ticket's digest, not the ticket"
    assert 0 < await redis.pttl(key) <= 30_000, "it expires by itself"
    first = await http.get(url, params={"ticket": ticket})
    assert first.status_code == 200 and "event: end" in first.text
    assert await redis.exists(key) == 0
    again = await http.get(url, params={"ticket": ticket})
    assert again.status_code == 401 and "used or expired" in again.json()["detail"]
    # A ticket works only on the streams, and only as a ticket.
    other = await ticket_for(http, "admin")
    assert (await http.get(f"/tasks/{task_id}", params={"ticket": other})).status_code == 401


async def test_a_long_lived_token_in_the_url_is_refused(
    http: httpx.AsyncClient, store: Store
) -> None:
    task_id = await finished_task(store)
    url = f"/tasks/{task_id}/logs/stream"
    for name in ("ticket", "token", "access_token"):
        response = await http.get(url, params={name: VIEWER})
        assert response.status_code == 401, name


async def test_concurrent_redeems_of_one_ticket_let_one_through(
    http: httpx.AsyncClient, store: Store
) -> None:
    task_id = await finished_task(store)
    ticket = await ticket_for(http, "viewer")
    url = f"/tasks/{task_id}/logs/stream"
    answers = await asyncio.gather(*(http.get(url, params={"ticket": ticket}) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 7


async def test_origin_check_and_cors(secured: Settings, redis: Redis, store: Store) -> None:
    task_id = await finished_task(store)
    retry = f"/tasks/{task_id}/retry"
    async with app_client(secured, redis) as http:
        own = await http.post(retry, headers=bearer("admin") | {"Origin": "http://hookagent"})
        assert own.status_code == 409, "a page of our own origin may post (and gets its 409)"
        refused = await http.post(retry, headers=bearer("admin") | {"Origin": FOREIGN})
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden_origin"
        null = await http.post("/webhooks/sentry", json={}, headers={"Origin": "null"})
        assert null.status_code == 403
        assert (await http.post("/webhooks/sentry", json={})).status_code != 403
        preflight = await http.options(
            retry, headers={"Origin": FOREIGN, "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers, "CORS is off by default"
    allowed = secured.model_copy(update={"cors_origins": f"{FOREIGN}/, https://b.example"})
    async with app_client(allowed, redis) as http:
        preflight = await http.options(
            retry,
            headers={
                "Origin": FOREIGN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == FOREIGN
        answer = await http.get("/tasks/", headers=bearer("viewer") | {"Origin": FOREIGN})
        assert answer.headers["access-control-allow-origin"] == FOREIGN
        posted = await http.post(retry, headers=bearer("admin") | {"Origin": FOREIGN})
        assert posted.status_code == 409, "a configured origin may post"


async def test_without_tokens_only_loopback_pages_count_as_our_origin(
    settings: Settings, redis: Redis, store: Store
) -> None:
    """A rebound DNS name has Origin and Host agree; without tokens that must not pass."""
    task_id = await finished_task(store)
    async with app_client(settings, redis) as http:
        rebound = {"Origin": "http://attacker.example:8000", "Host": "attacker.example:8000"}
        assert (await http.post(f"/tasks/{task_id}/retry", headers=rebound)).status_code == 403
        local = {"Origin": "http://127.0.0.1:8000", "Host": "127.0.0.1:8000"}
        assert (await http.post(f"/tasks/{task_id}/retry", headers=local)).status_code == 409


@pytest.fixture
async def live(secured: Settings, redis: Redis) -> AsyncIterator[str]:
    """A real uvicorn server with tokens on a free loopback port; yields its ws:// base."""
    app: FastAPI = create_app(secured, redis=redis)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(web.serve(sockets=[sock]))
    yield f"127.0.0.1:{port}"
    web.should_exit = True
    await serving
    sock.close()


async def ws_messages(url: str, **options: Any) -> list[str]:
    async with websockets.connect(url, **options) as ws:
        return [str(message) async for message in ws]


async def test_websocket_needs_a_token_or_a_ticket(live: str, store: Store) -> None:
    task_id = await finished_task(store)
    url = f"ws://{live}/tasks/{task_id}/logs/ws"
    for options in (
        {},
        {"additional_headers": {"Authorization": "Bearer nope-nope-nope-nope"}},
        {"additional_headers": bearer("admin") | {"Origin": FOREIGN}},
    ):
        with pytest.raises(InvalidStatus) as refused:
            await ws_messages(url, **options)
        assert refused.value.response.status_code == 403, options
    with_header = await ws_messages(url, additional_headers=bearer("viewer"))
    assert '"type":"end"' in with_header[-1].replace(" ", "")
    async with httpx.AsyncClient(base_url=f"http://{live}") as http:
        ticket = await ticket_for(http, "viewer")
    with_ticket = await ws_messages(f"{url}?ticket={ticket}")
    assert with_ticket == with_header
    with pytest.raises(InvalidStatus):
        await ws_messages(f"{url}?ticket={ticket}")
