"""Start-up: from a webhook to the agent's first line, first and second task on one repository.

A repository of 10,000 files (a bare remote reached over ``file://``, so every clone packs
and unpacks it as a server would), whose ``.hookagent/setup.sh`` unpacks 2,000 files of
"dependencies" into the repository's cache when they are not there yet (standing in for a
package download) and links them into the workspace. ``hookagent server`` takes the
webhooks; a worker runs in this process. The agent prints ``T<time.time_ns()>`` first; the
figure is that clock reading minus the one taken just before the webhook was posted.
The remote is reached over ``file://`` (no network: a clone costs only packing) and over
HTTP at a given bandwidth (``--mbps``, standing in for a forge across a network).
The first task clones the mirror and fills the cache; the second fetches into the mirror,
takes the spare checkout prepared after the first clone (worker/spare.py), checks out only
what changed, and finds the cache. Between the two tasks the bench waits for the worker's
background work (the spare's preparation, the first workspace's deletion) through
``Workspaces.settled()``, an await on those tasks, not a poll: posted earlier, the second
task would measure a race with that work rather than the steady state of a repository
whose tasks are not back to back. Target: second <= 30 % of first.

    python bench/startup.py [--files 10000] [--mbps 0,100] [--redis-url URL]

``make bench`` runs it too (bench/run.py): 10,000 files over ``file://`` and at 100 Mbit/s;
with ``--quick`` 2,000 files over ``file://`` only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import resource
import shlex
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

import httpx

from common import Row, Server, load_average, print_rows, valkey
from hookagent.agents import build_agent
from hookagent.models import TaskStatus
from hookagent.settings import Settings
from hookagent.store import Store, connect
from hookagent.worker import Worker

REPO = "acme/monorepo"
TARGET = 0.30
DEPENDENCIES = 2_000
AGENT = (
    "import sys, time; print(f'T{time.time_ns()}', flush=True); sys.stdin.read(); print('PLAN: ok')"
)
SETUP = """\
set -e
deps="$XDG_CACHE_HOME/deps"
if [ ! -d "$deps" ]; then
  mkdir -p "$deps.partial"
  tar -xzf vendor/deps.tar.gz -C "$deps.partial"
  mv "$deps.partial" "$deps"
  echo "cache miss: unpacked the dependencies"
else
  echo "cache hit"
fi
ln -sfn "$deps" node_modules
"""


def make_remote(root: Path, files: int) -> None:
    """The bare remote: ``files`` source files, the setup script and its dependency archive."""
    seed = root / "seed"
    for n in range(files):
        path = seed / f"pkg{n % 100:02d}" / f"mod{n}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Distinct contents, some weight: a clone has real objects to pack and send.
        path.write_text(f"# module {n}\n" + f"VALUE_{n} = {os.urandom(400).hex()!r}\n")
    (seed / ".hookagent").mkdir()
    (seed / ".hookagent" / "setup.sh").write_text(SETUP)
    (seed / "vendor").mkdir()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for n in range(DEPENDENCIES):
            data = f"module.exports = {n};\n".encode() * 20
            info = tarfile.TarInfo(f"dep{n % 50}/file{n}.js")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (seed / "vendor" / "deps.tar.gz").write_bytes(archive.getvalue())
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}  # fmt: skip
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "seed"]):
        subprocess.run(["git", *args], cwd=seed, env=env, check=True, capture_output=True)
    bare = root / f"{REPO}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(bare)], check=True)


class SlowRemote:
    """The remotes under ``root`` over smart HTTP (``git http-backend``), sent at ``rate`` B/s.

    Stands in for a forge across a network: a clone pays for every byte, a fetch for what
    changed. Reads are not limited (git's requests are small).
    """

    def __init__(self, root: Path, rate: float) -> None:
        rate_bps = rate

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's
                return

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path, _, query = self.path.partition("?")
                env = {
                    "PATH": os.environ["PATH"],
                    "GIT_PROJECT_ROOT": str(root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                    "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                }
                out = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
                ).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                headers = [h.split(":", 1) for h in head.decode().splitlines() if ":" in h]
                status = next((v.strip() for k, v in headers if k.lower() == "status"), "200")
                self.send_response(int(status.split()[0]))
                for name, value in headers:
                    if name.lower() != "status":
                        self.send_header(name, value.strip())
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                chunk = 64 * 1024
                for at in range(0, len(payload), chunk):
                    self.wfile.write(payload[at : at + chunk])
                    time.sleep(chunk / rate_bps)  # the bandwidth, not a poll

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SlowRemote:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


async def follow(store: Store, task_id: str, timeout: float = 300) -> int:
    """The agent's clock reading in its first line, once the task waits for approval.

    Waits on the task's log stream (XREAD BLOCK): every status change logs a line first.
    """
    last, printed = "0-0", None
    async with asyncio.timeout(timeout):
        while True:
            entries, _ = await store.logs.read(task_id, offset=0, limit=-1)
            for entry in entries:
                if printed is None and entry.message.startswith("[stdout] T"):
                    printed = int(entry.message.removeprefix("[stdout] T"))
            task = await store.tasks.get(task_id)
            if task.status is TaskStatus.FAILED:
                raise SystemExit(f"task failed: {task.error}")
            if printed is not None and task.status is TaskStatus.PENDING_APPROVAL:
                return printed
            reply = await store.redis.xread({store.keys.logs(task_id): last}, block=1000)
            streams = cast("list[tuple[str, list[tuple[str, object]]]]", reply or [])
            for _, found in streams:
                last = found[-1][0]


def worker_cpu() -> float:
    """CPU seconds of this process (the worker) and its ended children (git, setup, agent)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def one_task(http: httpx.AsyncClient, store: Store) -> tuple[float, float]:
    """Seconds from posting the webhook to the agent's first line; the worker's CPU seconds
    meanwhile (robust to the load of a shared machine)."""
    payload = {
        "data": {
            "event": {
                "title": f"startup {uuid.uuid4().hex[:6]}",
                "issue_id": uuid.uuid4().hex,
                "tags": [["repository", REPO]],
            }
        }
    }
    started, cpu = time.time_ns(), worker_cpu()
    response = await http.post("/webhooks/sentry", json=payload)
    response.raise_for_status()
    # The next task is posted once this one is done with: the worker is idle again.
    printed = await follow(store, response.json()["task_id"])
    return (printed - started) / 1e9, worker_cpu() - cpu


Timed = tuple[tuple[float, float], tuple[float, float]]


async def measure(redis_url: str, files: int, mbps: float) -> Timed:
    """(Seconds, CPU seconds) to the first line of the first and of the second task.

    ``mbps``: the remote over HTTP at this many megabits a second; 0: over ``file://``.
    """
    with tempfile.TemporaryDirectory(prefix="hookagent-startup-") as tmp:
        root = Path(tmp)
        make_remote(root / "remotes", files)
        with contextlib.ExitStack() as stack:
            if mbps > 0:
                remote = stack.enter_context(SlowRemote(root / "remotes", mbps * 1e6 / 8))
                template = f"{remote.url}/{{repo}}.git"
            else:
                template = f"file://{root / 'remotes'}/{{repo}}.git"
            return await _two_tasks(redis_url, root / "data", template)


async def _two_tasks(redis_url: str, data: Path, template: str) -> Timed:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        redis_url=redis_url,
        key_prefix=prefix,
        data_dir=data,
        git_url_template=template,
        agent="command",
        agent_command=shlex.join([sys.executable, "-c", AGENT]),
        log_flush_ms=20,
    )
    redis = connect(redis_url)
    store = Store.build(redis, settings)
    stop = asyncio.Event()
    worker = Worker(store=store, settings=settings, agent=build_agent(settings))
    running = asyncio.create_task(worker.run(stop))
    try:
        with Server(redis_url, prefix, data) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                first = await one_task(http, store)
                await worker.workspaces.settled()  # the spare is ready: the steady state
                second = await one_task(http, store)
    finally:
        stop.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await redis.aclose()
    return first, second


def row(timed: Timed, files: int, mbps: float) -> Row:
    """One row of the bench table."""
    (first, first_cpu), (second, second_cpu) = timed
    share = second / first
    remote = f"remote over HTTP at {mbps:g} Mbit/s" if mbps > 0 else "remote over file://"
    return Row(
        "startup",
        f"webhook → agent's first line, {files:,} files, {remote}, setup unpacking "
        f"{DEPENDENCIES:,} files into the cache (load {load_average()})",
        f"second ≤ {TARGET:.0%} of first",
        f"first {first:.2f} s, second {second:.2f} s ({share:.0%}); worker CPU "
        f"{first_cpu:.2f} s, {second_cpu:.2f} s",
        share <= TARGET,
    )


async def rows(url: str, quick: bool = False) -> list[Row]:
    """The bench's rows for ``make bench``: 10,000 files at two bandwidths, or 2,000 over file://."""
    files, bandwidths = (2_000, [0.0]) if quick else (10_000, [0.0, 100.0])
    found = []
    for mbps in bandwidths:
        found.append(row(await measure(url, files, mbps), files, mbps))
    return found


def main() -> None:
    """Parse arguments, measure each remote, print the rows."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument(
        "--mbps",
        default="0,100",
        help="comma-separated remote bandwidths in Mbit/s (0: file://); default 0,100",
    )
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    found = []
    with valkey(args.redis_url) as url:
        for mbps in (float(m) for m in args.mbps.split(",")):
            found.append(row(asyncio.run(measure(url, args.files, mbps)), args.files, mbps))
    print_rows(found)


if __name__ == "__main__":
    main()
