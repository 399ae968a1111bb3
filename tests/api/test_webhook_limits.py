"""``HOOKAGENT_RATE_LIMIT``: signature first, then verified deliveries per source and the rest
per client address, so no volume of unsigned traffic delays a signed delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.settings import Settings
from hookagent.store import Store
from tests.helpers import FIXTURES, app_client

GITHUB_SECRET = "gh-webhook-s3cret"
JIRA_SECRET = "jira-webhook-s3cret"
SENTRY_SECRET = "sentry-s3cret-value"
ISSUE = (FIXTURES / "github-issues-labeled.json").read_bytes()
SEED = (FIXTURES / "sentry-seed-example.json").read_bytes()
IGNORED = json.dumps({"webhookEvent": "jira:issue_deleted", "issue": {"key": "PAY-1"}}).encode()


def signed(secret: str, body: bytes, header: str, prefix: str = "") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", header: prefix + digest}


def github_headers(body: bytes, delivery: str, *, sign: bool = True) -> dict[str, str]:
    headers = {"content-type": "application/json", "x-github-event": "issues"}
    if sign:
        headers = signed(GITHUB_SECRET, body, "x-hub-signature-256", "sha256=") | headers
    return headers | {"x-github-delivery": delivery}


async def test_an_unsigned_flood_does_not_delay_a_signed_delivery(
    settings: Settings, redis: Redis, store: Store
) -> None:
    """The attack: 620 unsigned POSTs used up the minute's budget, counted before the check."""
    own = settings.model_copy(
        update={"github_webhook_secret": SecretStr(GITHUB_SECRET), "rate_limit": 600}
    )
    async with app_client(own, redis, address="203.0.113.66") as attacker:
        codes = [
            (await attacker.post("/webhooks/github", content=ISSUE, headers=headers)).status_code
            for headers in (github_headers(ISSUE, f"flood-{n}", sign=False) for n in range(1000))
        ]
    # The flood is refused: 401 up to its own address's budget, 429 past it.
    assert codes == [401] * 600 + [429] * 400
    async with app_client(own, redis, address="140.82.115.1") as github:
        started = time.perf_counter()
        real = await github.post(
            "/webhooks/github", content=ISSUE, headers=github_headers(ISSUE, "real-1")
        )
        took = time.perf_counter() - started
    assert real.status_code == 202, real.text
    assert took < 1.0, f"the signed delivery took {took:.2f}s"
    assert len(await store.tasks.list(status=None, limit=10)) == 1


async def test_a_bad_signature_counts_against_the_senders_address(
    settings: Settings, redis: Redis
) -> None:
    own = settings.model_copy(
        update={"github_webhook_secret": SecretStr(GITHUB_SECRET), "rate_limit": 2}
    )
    forged = github_headers(ISSUE, "forged") | {"x-hub-signature-256": "sha256=" + "0" * 64}
    async with app_client(own, redis, address="198.51.100.7") as http:
        codes = [
            (await http.post("/webhooks/github", content=ISSUE, headers=forged)).status_code
            for _ in range(3)
        ]
        refused = await http.post("/webhooks/github", content=ISSUE, headers=forged)
    assert codes == [401, 401, 429]
    assert refused.json()["error"] == "rate_limited"
    assert "unverified deliveries from 198.51.100.7" in refused.json()["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # The same address's signed deliveries are on another budget altogether.
    async with app_client(own, redis, address="198.51.100.7") as http:
        real = await http.post(
            "/webhooks/github", content=ISSUE, headers=github_headers(ISSUE, "r")
        )
    assert real.status_code == 202, real.text


async def test_verified_deliveries_count_per_source(settings: Settings, redis: Redis) -> None:
    own = settings.model_copy(
        update={
            "rate_limit": 3,
            "jira_webhook_secret": SecretStr(JIRA_SECRET),
            "sentry_client_secret": SecretStr(SENTRY_SECRET),
        }
    )
    jira = signed(JIRA_SECRET, IGNORED, "x-hub-signature", "sha256=")
    async with app_client(own, redis) as http:
        for _ in range(3):
            assert (
                await http.post("/webhooks/jira", content=IGNORED, headers=jira)
            ).status_code == 200
        refused = await http.post("/webhooks/jira", content=IGNORED, headers=jira)
        assert refused.status_code == 429
        assert refused.json()["error"] == "rate_limited"
        assert "deliveries from jira this minute (HOOKAGENT_RATE_LIMIT)" in refused.json()["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Counted per source: Sentry still gets through.
        sentry = signed(SENTRY_SECRET, SEED, "sentry-hook-signature")
        assert (
            await http.post("/webhooks/sentry", content=SEED, headers=sentry)
        ).status_code == 202


async def test_unsigned_deliveries_without_a_secret_count_per_address(
    settings: Settings, redis: Redis
) -> None:
    """No secret set (loopback): nothing is verified, so every delivery is its address's."""
    own = settings.model_copy(update={"rate_limit": 3})
    json_only = {"content-type": "application/json"}
    async with app_client(own, redis, address="127.0.0.1") as http:
        codes = [
            (await http.post("/webhooks/jira", content=IGNORED, headers=json_only)).status_code
            for _ in range(3)
        ]
        # Past the address's budget, on any source.
        over = await http.post("/webhooks/sentry", content=SEED, headers=json_only)
    assert codes == [200] * 3 and over.status_code == 429
    async with app_client(own, redis, address="127.0.0.2") as other:
        assert (
            await other.post("/webhooks/sentry", content=SEED, headers=json_only)
        ).status_code == 202


async def test_an_ipv6_client_is_budgeted_per_64(settings: Settings, redis: Redis) -> None:
    """One host holds a whole /64: a new address in it is no new budget."""
    own = settings.model_copy(update={"rate_limit": 2})
    json_only = {"content-type": "application/json"}
    for number, address in enumerate(("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ff::9")):
        async with app_client(own, redis, address=address) as http:
            answer = await http.post("/webhooks/jira", content=IGNORED, headers=json_only)
        assert answer.status_code == (200 if number < 2 else 429), address
    async with app_client(own, redis, address="2001:db8:1:3::1") as http:
        assert (
            await http.post("/webhooks/jira", content=IGNORED, headers=json_only)
        ).status_code == 200
