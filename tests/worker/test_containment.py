"""The proof of containment: one stranger's agent tries everything, under real bubblewrap.

A prompt injection obeyed (tests/stranger_agent.py), in planning and in execution: git
hooks, config and drivers for hookagent's own git; connections to the API and Redis, straight
and through the egress proxy, and to the metadata service; every API token and configured
secret printed plain, in base64 and in hex. After the task: no planted program ran, no
secret is in the logs, search, the plan, the pull request, the Redis append-only file or
the pushed branch, the listed service answered, and the normal change was pushed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from hookagent.cli.embedded import EmbeddedValkey
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store
from hookagent.worker.sandbox import probe
from tests.conftest import RunWorker
from tests.github_stub import GitHubStub
from tests.helpers import FIXTURES, REPO, app_client, wait_status
from tests.worker.test_egress import Listener, host_addresses
from tests.worker.test_leaks import aof_text

UNUSABLE = probe(network=True)
pytestmark = pytest.mark.skipif(
    UNUSABLE is not None, reason=f"bubblewrap cannot sandbox on this machine: {UNUSABLE}"
)
HERE = Path(__file__).parent.parent
ADMIN_TOKEN = "adm-" + "Qw8Er4Ty6Ui2Op0As7Df"
VIEWER_TOKEN = "vwr-" + "Zx3Cv5Bn7Mm9Lk1Jh4Gg"
GITHUB_TOKEN = "ghp_" + "ContainmentTestToken00000000000000x"
WEBHOOK_SECRET = "sentry-containment-secret-value"
SECRETS = [ADMIN_TOKEN, VIEWER_TOKEN, GITHUB_TOKEN, WEBHOOK_SECRET]


def forms(secret: str) -> list[str]:
    """The secret and the encodings the agent prints it in."""
    raw = secret.encode()
    encoded = (base64.b64encode(raw), base64.urlsafe_b64encode(raw))
    return [secret, *(e.decode().rstrip("=") for e in encoded), raw.hex()]


def leaked(text: str) -> list[str]:
    """Every form of every secret found in ``text``."""
    return [form for secret in SECRETS for form in forms(secret) if form in text]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Valkey on loopback TCP, a port the agent can try (a unix socket it could not see)."""
    deep = tmp_path_factory.mktemp("valkey-tcp") / ("d" * 60) / ("e" * 60)
    with EmbeddedValkey(deep) as valkey:
        yield valkey.url


@pytest.fixture
def github() -> Iterator[GitHubStub]:
    with GitHubStub() as stub:
        yield stub


def git(*args: str | Path) -> str:
    done = subprocess.run(["git", *map(str, args)], capture_output=True, text=True, check=True)
    return done.stdout


async def test_a_strangers_agent_takes_nothing_and_the_change_still_ships(
    settings: Settings,
    store: Store,
    redis: Redis,
    start_worker: RunWorker,
    github: GitHubStub,
    remotes: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    redis_port = urlsplit(str(settings.redis_url)).port
    with Listener("hookagent-api", "0.0.0.0") as api, Listener("mirror", "127.0.0.1") as mirror:
        ours = [f"127.0.0.1:{api.port}", f"127.0.0.1:{redis_port}"]
        ours += [f"{a}:{p}" for a in host_addresses() for p in (api.port, redis_port)]
        listed = f"127.0.0.1:{mirror.port}"
        agent = [sys.executable, HERE / "stranger_agent.py", HERE / "git_agent.py"]
        agent += [HERE / "net_agent.py", markers]
        own = {
            "agent_command": shlex.join(map(str, agent)),
            "sandbox": "bwrap",
            "agent_env": "NET_*,STRANGER_*",
            "port": api.port,
            "egress_allow": ",".join([listed, *ours]),  # the lists cannot open ours
            "api_tokens": SecretStr(f"admin:ops:{ADMIN_TOKEN},viewer:{VIEWER_TOKEN}"),
            "github_api_url": github.url,
            "github_token": SecretStr(GITHUB_TOKEN),
            "sentry_client_secret": SecretStr(WEBHOOK_SECRET),
            "require_signatures": False,
        }
        start_worker(**own)
        # What the stranger's agent found out: every secret hookagent holds.
        monkeypatch.setenv("STRANGER_SECRETS", ",".join(SECRETS))
        monkeypatch.setenv("NET_DIRECT", ",".join(ours))
        monkeypatch.setenv("NET_CONNECT", ",".join([*ours, "169.254.169.254:80", listed]))
        monkeypatch.setenv("NET_GET", f"http://{listed}/simple/")
        bearer = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        async with app_client(settings.model_copy(update=own)) as client:
            body = (FIXTURES / "sentry-event-alert.json").read_bytes()
            signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            headers = {"content-type": "application/json", "sentry-hook-signature": signature}
            answer = await client.post("/webhooks/sentry", content=body, headers=headers)
            assert answer.status_code == 202, answer.text
            tid = answer.json()["task_id"]
            planned = await wait_status(
                store, tid, {TaskStatus.PENDING_APPROVAL, TaskStatus.FAILED}, timeout=60
            )
            assert planned is TaskStatus.PENDING_APPROVAL
            approved = await client.post(f"/tasks/{tid}/approve", headers=bearer)
            assert approved.status_code == 200, approved.text
            ended = {TaskStatus.COMPLETED, TaskStatus.FAILED}
            done = await wait_status(store, tid, ended, timeout=90)
            entries = (
                await client.get(f"/tasks/{tid}/logs", params={"limit": -1}, headers=bearer)
            ).json()["logs"]
            task = (await client.get(f"/tasks/{tid}", headers=bearer)).json()
            hits = {
                form: (await client.get("/search", params={"q": form}, headers=bearer)).json()
                for secret in SECRETS
                for form in forms(secret)
            }
        assert api.visits == [], "the agent reached the API"

    messages = [e["message"] for e in entries]
    assert done is TaskStatus.COMPLETED, messages
    # It ran in both phases, and tried everything.
    assert len([m for m in messages if m.endswith(" in a bwrap sandbox")]) == 2
    assert len([m for m in messages if m.startswith("[stdout] exfiltrating ")]) == 32
    # No planted program ran: hookagent's git never read the agent's .git.
    assert sorted(p.name for p in markers.iterdir()) == []
    # Nothing of ours answered, straight or through the proxy; the listed mirror did.
    for target in ours:
        assert f"[stdout] direct {target}: connected" not in " ".join(messages)
        assert f"[system] blocked connection to {target}" in messages, target
    assert "[system] blocked connection to 169.254.169.254:80" in messages
    assert mirror.visits == ["/through-tunnel", "/simple/"] * 2, mirror.visits
    # No secret, in any form, anywhere it could be kept or sent.
    assert leaked(json.dumps(entries)) == [], "the log"
    assert {form: hit["hits"] for form, hit in hits.items() if hit["count"]} == {}, "search"
    assert leaked(json.dumps(task)) == [], "the task and its plan"
    [pull] = github.requests
    assert leaked(json.dumps(pull["body"])) == [], "the pull request"
    aof = await aof_text(redis)
    assert aof is not None and tid in aof and leaked(aof) == [], "the append-only file"
    # The normal change shipped, and only it: the pushed branch holds no secret either.
    branch = f"hookagent/{tid}"
    bare = remotes / f"{REPO}.git"
    assert "def safe_total(xs):" in git("-C", bare, "show", f"{branch}:app.py")
    assert leaked(git("-C", bare, "log", "-p", "--all")) == [], "the remote"
