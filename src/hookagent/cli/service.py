"""Runs one process's part (`hookagent server`: the API; `hookagent worker`: worker loops).

`hookagent up` runs each part in a process of its own (supervise.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import io
import logging
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from hookagent.agents import build_agent
from hookagent.api import create_app
from hookagent.api.access_log import AccessLog, QuerySecretFilter
from hookagent.cli.embedded import EmbeddedValkey
from hookagent.errors import ConfigError
from hookagent.notify import Notifier
from hookagent.race import race
from hookagent.settings import Settings
from hookagent.store import Store, connect, unreachable
from hookagent.worker import Worker

log = logging.getLogger(__name__)

STOP_MARGIN_S = 10.0
RESTART_DELAY_S = 1.0
# How long a stop waits for open HTTP connections (log streams never end by themselves).
STREAM_CLOSE_S = 3
# How long start-up waits for the configured Redis to answer PING.
PROBE_TIMEOUT_S = 5.0
REDIS_URL_FIX = (
    "fix: redis://[user:password@]host[:port][/db], rediss:// for TLS or "
    "unix:///path/to/redis.sock, with @ : / in the password written %40 %3A %2F"
)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``run_services`` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up; on a socket handed over, its start-up line said by us."""
        await super().startup(sockets=sockets)
        if sockets and self.started:
            host, port = sockets[0].getsockname()[:2]
            # The line uvicorn writes for a port it binds itself (scripts wait for it).
            log.info(
                "Uvicorn running on http://%s:%d (a socket shared by API processes)", host, port
            )


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, secret query values cut from its request lines.

    The access lines are the front layer's (api/access_log.py); uvicorn still writes its
    WebSocket lines on its error log, and the filter cuts them there.
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["query_secrets"] = {"()": QuerySecretFilter}
    for handler in ("default", "access"):
        config["handlers"][handler].setdefault("filters", []).append("query_secrets")
    return config


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (a cheaper request path), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # not built for every platform: asyncio's loop serves the same
        return None
    return uvloop.new_event_loop


def check_startup(settings: Settings, *, api: bool, worker: bool, embedded: bool) -> None:
    """Refuse what would fail once started, as one line naming the setting and its fix.

    Runs before Valkey or any process starts: a malformed or unreachable
    ``HOOKAGENT_REDIS_URL``, a data dir that cannot be made, a port in use.
    """
    url = settings.redis_url
    if not url and not embedded:
        raise ConfigError(
            "HOOKAGENT_REDIS_URL: not set, and only `hookagent up` embeds Valkey "
            "(fix: set it to your Redis, or run `hookagent up`)"
        )
    if url:
        check_redis_url(url)
    if worker or not url:
        check_data_dir(settings.data_dir)
    if api:
        check_port(settings.host, settings.port)
    if url:
        reason = asyncio.run(
            unreachable(url, cluster=settings.redis_cluster, timeout=PROBE_TIMEOUT_S)
        )
        if reason is not None:
            raise ConfigError(
                f"HOOKAGENT_REDIS_URL: {masked(url)} does not answer: {reason} (fix: start "
                "Redis there or correct the URL; unset it and `hookagent up` embeds Valkey)"
            )


def check_redis_url(url: str) -> None:
    """Refuse a URL redis-py would misread or reject (an unescaped @ in the password…)."""
    parts = urlsplit(url)
    userinfo, _, _ = parts.netloc.rpartition("@")
    problem = None
    if parts.scheme not in ("redis", "rediss", "unix"):
        problem = f"the scheme must be redis, rediss or unix, not {parts.scheme or 'none'!r}"
    elif parts.scheme == "unix":
        problem = None if parts.path else "a unix URL needs the socket's path"
    elif "@" in userinfo:
        problem = "the password (or user) holds an unescaped @"
    elif not parts.hostname:
        problem = "no host"
    else:
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
        except ValueError:
            problem = "the port is not a number from 0 to 65535"
    if problem is not None:
        raise ConfigError(f"HOOKAGENT_REDIS_URL: {problem} in {masked(url)} ({REDIS_URL_FIX})")


def masked(url: str) -> str:
    """``url`` with whatever sits before the last @ of its address hidden (a password)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    shown = f"***{at}{hostport}" if userinfo else hostport
    return parts._replace(netloc=shown).geturl() if parts.scheme else "(unparsable)"


def check_data_dir(path: Path) -> None:
    """Refuse a data dir that cannot be created or written (a file in its way, no rights)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            f"HOOKAGENT_DATA_DIR: cannot use {str(path)!r} ({exc.strerror or exc}) "
            "(fix: point HOOKAGENT_DATA_DIR at a directory this user may create and write)"
        ) from None


def check_port(host: str, port: int) -> None:
    """Refuse an address the API could not listen on (bound as uvicorn binds it)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"HOOKAGENT_HOST: cannot resolve {host!r} ({exc.strerror}) "
            "(fix: an address of this machine, e.g. 127.0.0.1 or 0.0.0.0, with --host)"
        ) from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"HOOKAGENT_PORT: {host}:{port} is already in use (fix: stop what "
                    "listens there, or choose another port with --port or HOOKAGENT_PORT)"
                ) from None
            raise ConfigError(
                f"HOOKAGENT_HOST: cannot listen on {host}:{port} ({exc.strerror}) "
                "(fix: an address of this machine, e.g. 127.0.0.1 or 0.0.0.0, with --host)"
            ) from None


@contextlib.contextmanager
def embedded_store(settings: Settings) -> Iterator[Settings]:
    """Settings pointing at Redis: the configured one, or an embedded Valkey started here."""
    if settings.redis_url:
        yield settings
        return
    with EmbeddedValkey(settings.data_dir) as valkey:
        yield settings.model_copy(update={"redis_url": valkey.url})


async def run_services(
    settings: Settings, *, server: bool, workers: int, listen_fd: int | None = None
) -> None:
    """Serve until SIGINT/SIGTERM: stop accepting, stop workers, close Redis. Twice forces.

    ``listen_fd``: the API serves this listening socket (handed over by a supervisor)
    instead of binding ``HOOKAGENT_HOST``:``HOOKAGENT_PORT`` itself.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", sig.name)
            raise SystemExit(130)
        log.info("%s received: shutting down", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    redis = connect(str(settings.redis_url), cluster=settings.redis_cluster)
    store = Store.build(redis, settings)
    access: AccessLog | None = None
    try:
        await store.jobs.ensure_group()
        # Notifications are delivered beside the workers, never inside a job (notify/outbox.py).
        notifier = Notifier(store=store, settings=settings) if workers else None
        notify_task = (
            asyncio.create_task(keep_running("notifier", notifier.run, stop), name="notifier")
            if notifier
            else None
        )
        runners = [
            Worker(store=store, settings=settings, agent=build_agent(settings))
            for _ in range(workers)
        ]
        worker_tasks = [
            asyncio.create_task(keep_running(f"worker {w.name}", w.run, stop), name=w.name)
            for w in runners
        ]
        web: _Server | None = None
        web_task: asyncio.Task[None] | None = None
        if server:
            if settings.access_log:
                access = AccessLog(sys.stdout)
            config = uvicorn.Config(
                create_app(settings, redis=redis, access=access),
                host=settings.host,
                port=settings.port,
                log_level="info",
                # The front layer writes the access lines (api/access_log.py), cheaper.
                access_log=False,
                log_config=log_config(),
                # The app reads X-Forwarded-For itself, from HOOKAGENT_TRUSTED_PROXIES only
                # (api/proxies.py); uvicorn's own handling trusts any loopback peer.
                proxy_headers=False,
                lifespan="on",
                # Open log streams (SSE, WebSocket) never end on their own: past this, a
                # stop closes them, and their clients resume elsewhere with Last-Event-ID.
                timeout_graceful_shutdown=STREAM_CLOSE_S,
            )
            web = _Server(config)
            sockets = None if listen_fd is None else [socket.socket(fileno=listen_fd)]
            web_task = asyncio.create_task(web.serve(sockets=sockets), name="api")
        await _wait_stop(stop, web_task)
        # Order: stop accepting requests, let running jobs finish up to the grace period,
        # then cancel the rest; a cancelled job is handed back to the queue at once.
        if web is not None and web_task is not None:
            web.should_exit = True
            await web_task
        await _drain_workers(runners, worker_tasks, settings.shutdown_grace, settings.kill_grace)
        if notify_task is not None:
            # It stops at the stop event; an event still being sent stays pending for the next.
            await asyncio.wait([notify_task], timeout=STOP_MARGIN_S)
            notify_task.cancel()
            await asyncio.gather(notify_task, return_exceptions=True)
    finally:
        if access is not None:
            access.flush()  # the lines of the last tenth of a second
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await redis.aclose()


async def keep_running(
    name: str, loop: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Run ``loop(stop)`` until ``stop`` is set; if it ends before that, log it and restart it.

    A worker loop is meant to end only on shutdown; one that dies of a bug must not leave a
    process that looks healthy but takes no jobs. A cancel (shutdown) is never swallowed.
    """
    while not stop.is_set():
        try:
            await loop(stop)
        except Exception:
            log.exception("%s died; restarting it", name)
        else:
            if stop.is_set():
                return
            log.error("%s ended although nothing asked it to; restarting it", name)
        # Waited on the stop event, so a shutdown during the pause is not held up.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RESTART_DELAY_S):
                await stop.wait()


async def _wait_stop(stop: asyncio.Event, web_task: asyncio.Task[None] | None) -> None:
    """Until a signal, or until the server ends by itself (one that failed to start raises)."""
    if web_task is None:
        await stop.wait()
        return

    async def serving() -> None:
        # Shielded: the server is stopped gracefully (should_exit), never cancelled.
        await asyncio.shield(web_task)

    which, _ = await race(stop.wait(), serving())
    if which == 1:
        stop.set()


async def _drain_workers(
    runners: list[Worker], tasks: list[asyncio.Task[None]], grace: float, kill_grace: float
) -> None:
    busy = [t for w, t in zip(runners, tasks, strict=True) if w.busy]
    if busy:
        log.info("waiting up to %.0fs for %d running job(s)", grace, len(busy))
        await asyncio.wait(busy, timeout=grace)
    if not tasks:
        return  # `hookagent server`: no worker loops (asyncio.wait refuses an empty set)
    for task in tasks:
        task.cancel()
    # Cancelled jobs kill their agents (SIGTERM, then SIGKILL after the kill grace) and hand
    # the job back; past that, a stuck worker must not keep the process from exiting.
    _, stuck = await asyncio.wait(tasks, timeout=kill_grace + STOP_MARGIN_S)
    for task in stuck:
        log.error("worker did not stop; leaving it: %s", _stack(task))
    log.info("workers stopped")


def _stack(task: asyncio.Task[None]) -> str:
    buffer = io.StringIO()
    task.print_stack(file=buffer)
    return buffer.getvalue()
