"""The web UI's session: sign-in by token, the cookie as a credential, Origin, sign-out."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from pydantic import SecretStr
from redis.asyncio import Redis
from websockets.exceptions import InvalidStatus

from hookagent.api import create_app
from hookagent.api.auth import RuleBook, served
from hookagent.api.auth.origin import UNSAFE_METHODS
from hookagent.models import NewTask, TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.store.sessions import SIGNIN_ATTEMPTS_PER_MINUTE
from tests.helpers import app_client, move_to

VIEWER = "viewer-token-0123456789"
OPERATOR = "operator-token-0123456789"
ADMIN = "admin-token-0123456789abc"
FOREIGN = "https://evil.example"
COOKIE = "hookagent_session"
ACTIONS = ("approve", "reject", "revise", "cancel", "retry")


@pytest.fixture
def secured(settings: Settings) -> Settings:
    """The test's settings with a viewer, a named operator and a named admin token."""
    tokens = f"viewer:{VIEWER},operator:ops:{OPERATOR},admin:root:{ADMIN}"
    return settings.model_copy(update={"api_tokens": SecretStr(tokens)})


@pytest.fixture
async def base(secured: Settings, redis: Redis) -> AsyncIterator[str]:
    """A real uvicorn server with tokens on a free loopback port: ``http://127.0.0.1:<port>``."""
    app = create_app(secured, redis=redis)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    web = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(web.serve(sockets=[sock]))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    web.should_exit = True
    await serving
    sock.close()


@pytest.fixture
async def http(base: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the live server that keeps no cookies of its own (each test sends them)."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        yield client


async def sign_in(http: httpx.AsyncClient, token: str) -> str:
    """The session id the server sets for ``token``."""
    response = await http.post("/ui/session", json={"token": token})
    assert response.status_code == 200, response.text
    session_id = response.cookies.get(COOKIE)
    assert session_id
    http.cookies.clear()  # every request below says which cookie it sends
    return session_id


def cookie(session_id: str, origin: str | None = None) -> dict[str, str]:
    headers = {"Cookie": f"{COOKIE}={session_id}"}
    return headers | ({"Origin": origin} if origin else {})


async def task_in(store: Store, status: TaskStatus) -> str:
    new = NewTask(source="sentry", repository="acme/x", title="t", prompt="p")
    task_id = (await store.tasks.create(new)).task_id
    fields = {"plan": "the plan"} if status is TaskStatus.PENDING_APPROVAL else None
    await move_to(store, task_id, status, reason="done", fields=fields)
    return task_id


async def ws_messages(url: str, **options: Any) -> list[str]:
    async with websockets.connect(url, **options) as ws:
        return [str(message) async for message in ws]


async def test_sign_in_sets_a_strict_httponly_cookie_that_reads_and_follows(
    http: httpx.AsyncClient, base: str, store: Store, redis: Redis
) -> None:
    response = await http.post("/ui/session", json={"token": VIEWER})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": f"viewer-{hashlib.sha256(VIEWER.encode()).hexdigest()[:6]}",
        "role": "viewer",
        "anonymous": False,
        "can": dict.fromkeys(ACTIONS, False),
    }
    assert response.headers["cache-control"] == "no-store"
    set_cookie = response.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in set_cookie.lower() and "path=/" in set_cookie.lower()
    assert "secure" not in attributes, "plain http on loopback: a Secure cookie would be lost"
    session_id = response.cookies[COOKIE]
    assert VIEWER not in set_cookie and len(session_id) >= 43
    # Redis holds the id's digest and the token's digest: neither signs anybody in.
    key = store.sessions.key_of(session_id)
    raw = await redis.get(key)
    assert raw is not None and session_id not in key and session_id not in raw
    assert VIEWER not in raw
    idle = store.sessions.idle_seconds  # HOOKAGENT_SESSION_TTL
    assert idle - 60 < await redis.ttl(key) <= idle

    task_id = await task_in(store, TaskStatus.COMPLETED)
    http.cookies.clear()
    tasks = await http.get("/tasks/", headers=cookie(session_id))
    assert tasks.status_code == 200 and task_id in tasks.text
    me = await http.get("/ui/me", headers=cookie(session_id))
    assert me.json()["role"] == "viewer"
    stream = await http.get(f"/tasks/{task_id}/logs/stream", headers=cookie(session_id))
    assert stream.status_code == 200 and "event: end" in stream.text
    ws_url = base.replace("http", "ws", 1) + f"/tasks/{task_id}/logs/ws"
    messages = await ws_messages(ws_url, additional_headers=cookie(session_id, base))
    assert '"type":"end"' in messages[-1].replace(" ", "")
    # An upgrade signed by cookie must come from our own page, like any state change.
    for origin in (None, FOREIGN):
        with pytest.raises(InvalidStatus) as refused:
            await ws_messages(ws_url, additional_headers=cookie(session_id, origin))
        assert refused.value.response.status_code == 403, origin


async def test_the_session_slides_and_ends_at_its_absolute_limit(
    http: httpx.AsyncClient, store: Store, redis: Redis
) -> None:
    session_id = await sign_in(http, VIEWER)
    key = store.sessions.key_of(session_id)
    await redis.expire(key, 60)
    assert (await http.get("/tasks/", headers=cookie(session_id))).status_code == 200
    assert await redis.ttl(key) > store.sessions.idle_seconds - 60, "each use renews the period"
    # Signed in almost 7 days ago: renewal stops at the absolute end.
    record = json.loads(str(await redis.get(key)))
    record["at"] = int(time.time()) - store.sessions.max_seconds + 30
    await redis.set(key, json.dumps(record), ex=60)
    assert (await http.get("/tasks/", headers=cookie(session_id))).status_code == 200
    assert await redis.ttl(key) <= 30
    record["at"] = int(time.time()) - store.sessions.max_seconds - 1
    await redis.set(key, json.dumps(record), ex=60)
    expired = await http.get("/tasks/", headers=cookie(session_id))
    assert expired.status_code == 401 and "sign in again" in expired.json()["detail"]
    assert await redis.exists(key) == 0


async def test_a_viewer_cookie_cannot_act_and_an_operator_cookie_needs_our_origin(
    http: httpx.AsyncClient, base: str, store: Store
) -> None:
    task_id = await task_in(store, TaskStatus.PENDING_APPROVAL)
    approve = f"/tasks/{task_id}/approve"
    viewer = await sign_in(http, VIEWER)
    refused = await http.post(approve, json={}, headers=cookie(viewer, base))
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    operator = await sign_in(http, OPERATOR)
    me = (await http.get("/ui/me", headers=cookie(operator))).json()
    assert me == {"name": "ops", "role": "operator", "anonymous": False,
                  "can": dict.fromkeys(ACTIONS, True)}  # fmt: skip
    for origin in (FOREIGN, None, "http://127.0.0.1:1"):
        answer = await http.post(approve, json={}, headers=cookie(operator, origin))
        assert answer.status_code == 403, (origin, answer.text)
        assert answer.json()["error"] == "forbidden_origin"
    assert (await store.tasks.get(task_id)).status is TaskStatus.PENDING_APPROVAL
    approved = await http.post(approve, json={"comment": "go"}, headers=cookie(operator, base))
    assert approved.status_code == 200, approved.text
    assert (await store.tasks.get(task_id)).approver == "ops"
    # A bearer token is no ambient credential: it needs no Origin.
    retry = await http.post(
        f"/tasks/{await task_in(store, TaskStatus.FAILED)}/retry",
        headers={"Authorization": f"Bearer {OPERATOR}"},
    )
    assert retry.status_code == 200, retry.text


async def test_sign_out_ends_the_session_and_expires_the_cookie(
    http: httpx.AsyncClient, base: str, store: Store, redis: Redis
) -> None:
    session_id = await sign_in(http, VIEWER)
    out = await http.delete("/ui/session", headers=cookie(session_id, base))
    assert out.status_code == 204
    expired = out.headers["set-cookie"].lower()
    assert expired.startswith(f"{COOKIE}=") and "max-age=0" in expired
    assert await redis.exists(store.sessions.key_of(session_id)) == 0
    after = await http.get("/tasks/", headers=cookie(session_id))
    assert after.status_code == 401
    assert after.headers["www-authenticate"] == 'Bearer realm="hookagent"'
    assert (await http.get("/ui/me", headers=cookie(session_id))).status_code == 401


async def test_sign_out_by_cookie_needs_our_origin_and_by_bearer_none(
    http: httpx.AsyncClient, base: str, store: Store, redis: Redis
) -> None:
    """A page elsewhere could sign the browser out (DELETE /ui/session read no Origin)."""
    session_id = await sign_in(http, VIEWER)
    for origin in (None, FOREIGN):
        refused = await http.delete("/ui/session", headers=cookie(session_id, origin))
        assert refused.status_code == 403, (origin, refused.text)
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"] == "forbidden_origin"
        assert "set-cookie" not in refused.headers
    assert await redis.exists(store.sessions.key_of(session_id)) == 1
    out = await http.delete("/ui/session", headers=cookie(session_id, base))
    assert out.status_code == 204
    assert await redis.exists(store.sessions.key_of(session_id)) == 0
    # A bearer token needs no Origin; a wrong one is refused like anywhere else.
    session_id = await sign_in(http, VIEWER)
    bearer = {"Authorization": f"Bearer {VIEWER}"}
    out = await http.delete("/ui/session", headers=cookie(session_id) | bearer)
    assert out.status_code == 204, out.text
    assert await redis.exists(store.sessions.key_of(session_id)) == 0
    wrong = await http.delete("/ui/session", headers={"Authorization": "Bearer nope-0123456789"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    assert (await http.delete("/ui/session")).status_code == 204  # nothing to end


async def test_every_state_change_by_cookie_needs_our_origin(
    http: httpx.AsyncClient, base: str, secured: Settings, redis: Redis
) -> None:
    """Each POST/PUT/PATCH/DELETE a cookie can authenticate, from the app's own route list."""
    app = create_app(secured, redis=redis)
    rules: RuleBook = app.state.rules
    changes = [
        key
        for key in served(app)
        if key.split()[0] in UNSAFE_METHODS
        and ((rule := rules.rule(key)) is not None and rule.role is not None)
    ] + ["DELETE /ui/session"]
    assert {"POST /tasks/{task_id}/approve", "POST /tasks/{task_id}/reject"} <= set(changes)
    admin = await sign_in(http, ADMIN)
    for key in changes:
        method, path = key.split()
        url = path.replace("{task_id}", "task-0-missing").replace("{", "").replace("}", "")
        for origin in (None, FOREIGN):
            answer = await http.request(method, url, json={}, headers=cookie(admin, origin))
            assert answer.status_code == 403, (key, origin, answer.text)
            assert answer.json()["error"] == "forbidden_origin", key


async def test_forged_and_revoked_cookies_and_bad_tokens_are_401(
    http: httpx.AsyncClient, settings: Settings, store: Store, redis: Redis
) -> None:
    for forged in ("x", "A" * 43, VIEWER):
        answer = await http.get("/tasks/", headers=cookie(forged))
        assert answer.status_code == 401, forged
        assert answer.json()["error"] == "unauthorized"
    bad = await http.post("/ui/session", json={"token": VIEWER + "x"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    assert "set-cookie" not in bad.headers
    digest = await http.post("/ui/session", json={"token": f"sha256:{'0' * 64}"})
    assert digest.status_code == 401
    # The viewer token taken out of the configuration: its sessions end with it.
    session_id = await sign_in(http, VIEWER)
    revoked = settings.model_copy(update={"api_tokens": SecretStr(f"operator:{OPERATOR}")})
    async with app_client(revoked, redis) as other:
        answer = await other.get("/tasks/", headers=cookie(session_id))
        assert answer.status_code == 401


async def test_failed_sign_ins_are_rate_limited_per_address(http: httpx.AsyncClient) -> None:
    for _ in range(SIGNIN_ATTEMPTS_PER_MINUTE - 1):
        answer = await http.post("/ui/session", json={"token": "wrong-token-0123456789"})
        assert answer.status_code == 401
    await sign_in(http, VIEWER)
    # The limit is counted before the token is checked: a right guess is refused too.
    limited = await http.post("/ui/session", json={"token": VIEWER})
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"


async def test_without_tokens_me_is_an_anonymous_admin(
    client: httpx.AsyncClient,
) -> None:
    me = await client.get("/ui/me")
    assert me.status_code == 200
    assert me.json() == {"name": "anonymous", "role": "admin", "anonymous": True,
                         "can": dict.fromkeys(ACTIONS, True)}  # fmt: skip
    signed = await client.post("/ui/session", json={"token": "anything-at-all-0123"})
    assert signed.status_code == 200 and signed.json()["anonymous"] is True
    assert "set-cookie" not in signed.headers
