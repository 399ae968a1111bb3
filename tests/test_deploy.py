"""The deploy files agree with the code: commands, flags, probed paths, ports, settings, metrics.

No container runtime or cluster here: the files are parsed and checked against the real
CLI (``hookagent --help``), the app's routes, ``Settings`` and a real ``/metrics`` scrape.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hookagent.api import create_app
from hookagent.cli.embedded import find_valkey
from hookagent.settings import ClientSettings, Settings
from hookagent.store import connect
from hookagent.store.auth import open_to_anyone

DEPLOY = Path(__file__).parent.parent / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
K8S = [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
       for doc in yaml.safe_load_all(path.read_text()) if doc]  # fmt: skip
DASHBOARD: dict[str, Any] = json.loads((DEPLOY / "grafana" / "hookagent.json").read_text())
PORT = 8000


def containers() -> Iterator[dict[str, Any]]:
    """Every container of every Kubernetes workload."""
    for doc in K8S:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield from doc["spec"]["template"]["spec"]["containers"]


def hookagent_commands() -> list[list[str]]:
    """Every ``hookagent ...`` argv the files run (compose, Kubernetes, the image's CMD)."""
    found = [json.loads(m) for m in re.findall(r"^CMD (\[.*\])$", DOCKERFILE, re.M)]
    found += [s["command"] for s in COMPOSE["services"].values() if "command" in s]
    found += [c.get("command", []) + c.get("args", []) for c in containers()]
    return [argv for argv in found if argv and argv[0] == "hookagent"]


@cache
def help_text(*command: str) -> str:
    """``hookagent [command] --help``, from the real CLI."""
    argv = [sys.executable, "-m", "hookagent.cli", *command, "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_every_file_parses_and_holds_what_it_should() -> None:
    assert {"valkey", "api", "worker"} <= set(COMPOSE["services"])
    kinds = {(d["kind"], d["metadata"]["name"]) for d in K8S}
    assert {("Deployment", "hookagent-api"), ("Deployment", "hookagent-worker"),
            ("Service", "hookagent-api"), ("ConfigMap", "hookagent-config"),
            ("Secret", "hookagent-env"), ("StatefulSet", "valkey")} <= kinds  # fmt: skip
    assert DASHBOARD["panels"] and all(p["targets"] for p in DASHBOARD["panels"])
    assert "--appendonly yes" in " ".join(COMPOSE["services"]["valkey"]["command"])


def test_every_command_and_flag_exists_in_the_cli() -> None:
    commands = hookagent_commands()
    assert {argv[1] for argv in commands} == {"server", "worker"}
    for argv in commands:
        assert re.search(rf"\b{argv[1]}\b", help_text()), argv
        for flag in (a for a in argv[2:] if a.startswith("-")):
            assert re.search(rf"(^|\s){re.escape(flag)}\b", help_text(argv[1]), re.M), argv


def probed_paths() -> list[tuple[str, int]]:
    """Every HTTP path and port a health check or probe requests."""
    probes = [
        (probe["httpGet"]["path"], probe["httpGet"]["port"])
        for c in containers()
        for probe in (c.get("livenessProbe"), c.get("readinessProbe"))
        if probe and "httpGet" in probe
    ]
    for url in re.findall(r"http://127\.0\.0\.1:(\d+)(/\w+)", DOCKERFILE):
        probes.append((url[1], int(url[0])))
    return probes


def test_every_probed_path_is_a_route_on_the_served_port(settings: Settings) -> None:
    routes = set(create_app(settings).openapi()["paths"])
    probes = probed_paths()
    assert {path for path, _ in probes} == {"/healthz", "/readyz"}
    for path, port in probes:
        assert path in routes and port == PORT, (path, port)
    api = next(c for c in containers() if c["name"] == "api")
    assert [p["containerPort"] for p in api["ports"]] == [PORT]
    service = next(
        d for d in K8S if d["kind"] == "Service" and d["metadata"]["name"] == "hookagent-api"
    )
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [PORT]
    assert re.search(rf"^EXPOSE {PORT}$", DOCKERFILE, re.M)
    assert all(m.endswith(f":{PORT}") for m in COMPOSE["services"]["api"]["ports"])
    assert ["--port", str(PORT)] == COMPOSE["services"]["api"]["command"][-2:]


def hookagent_variables() -> dict[str, str]:
    """Every ``HOOKAGENT_*`` variable the files set, with its value."""
    found = dict(re.findall(r"(HOOKAGENT_\w+)=(\S+)", DOCKERFILE))
    for service in COMPOSE["services"].values():
        found |= {k: str(v) for k, v in (service.get("environment") or {}).items()}
    for doc in K8S:
        found |= {k: str(v) for k, v in (doc.get("data") or doc.get("stringData") or {}).items()}
    for c in containers():
        found |= {e["name"]: str(e.get("value", "")) for e in c.get("env", [])}
    return {k: v for k, v in found.items() if k.startswith("HOOKAGENT_")}


def test_every_variable_is_a_real_setting_on_the_served_port() -> None:
    fields = set(Settings.model_fields) | set(ClientSettings.model_fields)
    variables = hookagent_variables()
    unknown = [v for v in variables if v.removeprefix("HOOKAGENT_").lower() not in fields]
    assert unknown == []
    assert variables["HOOKAGENT_PORT"] == str(PORT)


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    # The user is set before the command, so nothing runs as root after the build steps.
    assert DOCKERFILE.index(f"USER {users[-1]}") < DOCKERFILE.index("CMD [")
    for c in containers():
        if c["name"] != "valkey":
            assert "HEALTHCHECK" in DOCKERFILE and c["image"].startswith("hookagent")


async def test_the_dashboard_uses_only_metrics_the_api_serves(
    client: httpx.AsyncClient,
) -> None:
    served = (await client.get("/metrics")).text
    # Samples, and families with none yet (no webhook received): named by their HELP line.
    names = set(re.findall(r"^(?:# HELP )?(hookagent_\w+)", served, re.M))
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    used = {n for e in exprs for n in re.findall(r"hookagent_\w+", e)}
    assert used and used <= names, used - names
    # Each family the issue lists is on the dashboard.
    for family in ("queue_depth", "runs_in_progress", "tasks_total", "log_lines_total",
                   "webhooks_total", "phase_duration_seconds", "notification_backlog",
                   "cost_usd_total", "queue_oldest_job_age_seconds"):  # fmt: skip
        assert any(u.startswith(f"hookagent_{family}") for u in used), family


@pytest.mark.parametrize("shell", re.findall(r"^RUN (.*)$", DOCKERFILE, re.M))
def test_dockerfile_run_lines_are_valid_shell_words(shell: str) -> None:
    assert shlex.split(shell.rstrip("\\"))


def valkey_scripts() -> dict[str, tuple[str, str]]:
    """The shell script each deploy file starts Valkey with, and its password variable."""
    compose = COMPOSE["services"]["valkey"]
    # Compose turns $$ into $ before the shell sees it.
    scripts = {"compose": (compose["command"][2].replace("$$", "$"), "REDISCLI_AUTH")}
    valkey = next(c for c in containers() if c["name"] == "valkey")
    assert valkey["command"] == ["sh", "-c"]
    scripts["kubernetes"] = (valkey["args"][0], "VALKEY_PASSWORD")
    return scripts


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
async def test_valkey_requires_the_password_hookagent_is_given(where: str, tmp_path: Path) -> None:
    script, variable = valkey_scripts()[where]
    assert "valkey-server " in script and "requirepass" in script
    # The deploy file's own script, run by a real shell and a real valkey-server; only a
    # free port and a scratch directory are added, not to meet the machine's own Redis.
    port = free_port()
    local = f"valkey-server --port {port} --bind 127.0.0.1 --dir {tmp_path} --save '' "
    server = find_valkey()
    env = {"PATH": f"{Path(server).parent}:/usr/bin:/bin", variable: "deploy-test-pw"}
    with subprocess.Popen(
        ["sh", "-c", script.replace("valkey-server ", local, 1)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    ) as valkey:
        try:
            assert valkey.stdout is not None
            for output in valkey.stdout:  # the server's own word that it listens
                if "Ready to accept connections" in output:
                    break
            assert await open_to_anyone(f"redis://127.0.0.1:{port}/0", timeout=10) is False
            authed = f"redis://:deploy-test-pw@127.0.0.1:{port}/0"
            assert await open_to_anyone(authed, timeout=10) is False  # credentials stripped
            client = connect(authed)
            try:
                assert await client.ping()
            finally:
                await client.aclose()
        finally:
            valkey.terminate()
            valkey.wait(15)
    # hookagent is given the same password, in HOOKAGENT_REDIS_URL.
    if where == "compose":
        url = COMPOSE["x-hookagent-env"]["HOOKAGENT_REDIS_URL"]
        assert url.startswith("redis://:${VALKEY_PASSWORD:?") and url.endswith("@valkey:6379/0")
        assert compose_password_source() == "${VALKEY_PASSWORD:?set VALKEY_PASSWORD in deploy/.env}"
        return
    for c in containers():
        if c["name"] == "valkey":
            continue
        env_of = {e["name"]: e for e in c.get("env", [])}
        source = env_of["VALKEY_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert source == {"name": "valkey-auth", "key": "password"}, c["name"]
        assert env_of["HOOKAGENT_REDIS_URL"]["value"] == "redis://:$(VALKEY_PASSWORD)@valkey:6379/0"
    valkey_env = next(c for c in containers() if c["name"] == "valkey")["env"]
    assert valkey_env[0]["valueFrom"]["secretKeyRef"] == {"name": "valkey-auth", "key": "password"}
    secret = next(
        d for d in K8S if d["kind"] == "Secret" and d["metadata"]["name"] == "valkey-auth"
    )
    assert "password" in secret["stringData"]


def compose_password_source() -> str:
    """Where compose's Valkey gets its password from (the variable REDISCLI_AUTH is set to)."""
    value: str = COMPOSE["services"]["valkey"]["environment"]["REDISCLI_AUTH"]
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
