"""The ``hookagent`` command: thin, it parses arguments and calls the service or the API."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from hookagent.cli import cache, client, live, loglines, signing
from hookagent.errors import ConfigError, HookagentError
from hookagent.policy import load_policies
from hookagent.settings import ClientSettings, Settings, describe_errors, get_settings

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    serving = args.run in (_up, _server, _worker)
    # `up`'s API and worker processes share its terminal: each line names its process.
    role = args.run.__name__.strip("_") if serving else "hookagent"
    logging.basicConfig(
        level=logging.INFO if serving else logging.WARNING,
        format=f"%(asctime)s %(levelname)s [{role} %(process)d] %(name)s: %(message)s",
    )
    try:
        # The whole configuration is checked here, before anything starts.
        if serving:
            args.settings = _settings(args)
            if args.run in (_up, _server):
                _check_access(args.settings)
            load_policies(args.settings)  # an invalid policy file stops here, exit 2
            _check_startup(args)
        elif args.run is cache.run:
            args.settings = get_settings()  # a local command: the data dir, no Redis
        else:
            env = ClientSettings()
            args.url = args.url or env.url
            args.token = args.token or (env.token.get_secret_value() if env.token else None)
    except ValidationError as exc:
        for line in describe_errors(exc):
            _error(line)
        return EXIT_CONFIG
    except ConfigError as exc:
        _error(exc.message)
        return EXIT_CONFIG
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        # The configuration changed under a starting process (a policy file edited just
        # then): still bad settings, so `up` stops rather than restarting it forever.
        _error(exc.message)
        return EXIT_CONFIG
    except HookagentError as exc:
        _error(exc.message)
        return 1
    except httpx.TransportError as exc:
        _error(f"cannot reach {args.url}: {exc}")
        return 1
    return code


def _error(message: str) -> None:
    # soft_wrap: one message stays one line, whatever the terminal's width.
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hookagent", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up", help="API + worker processes (+ embedded Valkey when no HOOKAGENT_REDIS_URL)"
    )
    _serve_options(up, workers=True)
    up.set_defaults(run=_up)
    server = sub.add_parser("server", help="the API server alone (needs HOOKAGENT_REDIS_URL)")
    _serve_options(server, workers=False)
    # An API process of a supervisor serves the socket it was handed (cli/supervise.py).
    server.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    server.set_defaults(run=_server)
    worker = sub.add_parser("worker", help="worker loops alone (needs HOOKAGENT_REDIS_URL)")
    worker.add_argument(
        "--concurrency",
        "--workers",  # the name before 0.2, kept for scripts
        dest="workers",
        metavar="N",
        type=int,
        help="worker loops in this process (HOOKAGENT_WORKERS, default 1)",
    )
    worker.set_defaults(run=_worker)

    tasks = _client(sub, "tasks", "list tasks, newest first")
    tasks.add_argument("--status", help="only tasks in this status (e.g. pending_approval)")
    tasks.add_argument("--limit", type=int, default=50, help="at most N tasks (default 50)")
    _json_option(tasks)
    tasks.set_defaults(run=client.tasks)
    stats = _client(sub, "stats", "change requests opened, merged and closed, per repository")
    stats.set_defaults(run=client.stats)
    status = _client(sub, "status", "a task's status, plan and review rounds")
    status.add_argument("task_id", help="the task's id (task-…)")
    _json_option(status)
    status.set_defaults(run=client.status)
    logs = _client(sub, "logs", "a task's log lines")
    logs.add_argument("task_id", help="the task's id (task-…)")
    logs.add_argument("--offset", type=int, default=0, help="start at this line's seq (default 0)")
    logs.add_argument("--limit", type=int, default=-1, help="at most N lines (default -1: all)")
    logs.add_argument("-f", "--follow", action="store_true", help="follow live (resumes)")
    logs.add_argument("--tail", type=int, help="only the last N lines (then follow)")
    logs.add_argument("--since", help="only lines newer than 10m, 2h, 1d or an ISO time")
    logs.add_argument("--grep", help="only lines containing this (any case)")
    logs.add_argument(
        "--json", action="store_true", help="one JSON entry a line, as the API has it"
    )
    logs.set_defaults(run=loglines.logs)
    found = _client(sub, "search", "search every task's log")
    found.add_argument("query", help='words and "phrases", all must match')
    found.add_argument("--status", help="only tasks in this status")
    found.add_argument("--since", help="only lines newer than 10m, 2h, 1d or an ISO time")
    found.add_argument("--limit", type=int, default=50, help="at most N hits (default 50)")
    _json_option(found)
    found.set_defaults(run=loglines.search)
    watching = _client(
        sub, "watch", "running tasks with live progress (a line per change when piped)"
    )
    watching.set_defaults(run=live.watch)

    for verb, help_text, text_arg, text_help in (
        (
            "approve",
            "approve a pending plan (queues its execution)",
            "--comment",
            "a note for the log",
        ),
        ("reject", "reject a pending plan", "--reason", "why, for the log"),
        ("revise", "plan again with feedback", "--feedback", "what the next plan must change"),
        ("cancel", "stop a task wherever it is", "--reason", "why, for the log"),
        ("retry", "new attempt of a failed or cancelled task", None, ""),
    ):
        action = _client(sub, verb, help_text)
        action.add_argument("task_id", help="the task's id (task-…)")
        if text_arg:
            action.add_argument(text_arg, required=verb == "revise", help=text_help)
        # Kept so old scripts still run; the server logs the token's name instead.
        action.add_argument("--as", dest="actor", help=argparse.SUPPRESS)
        _json_option(action)
        action.set_defaults(run=client.action, verb=verb)

    submit = _client(sub, "submit", "post a webhook payload file to a running server, signed")
    submit.add_argument("source", choices=sorted(signing.WEBHOOK_SECRETS), help="the sender")
    submit.add_argument("file", help="a JSON payload")
    submit.add_argument(
        "--event",
        help="X-GitHub-Event (default: issue_comment for a payload with a comment, else "
        "issues), X-Gitlab-Event or Sentry-Hook-Resource (default: from the payload)",
    )
    submit.add_argument(
        "--secret",
        help="the webhook secret to sign with (default: the source's setting from the "
        "environment: "
        + ", ".join(f"{k} {v}" for k, v in sorted(signing.WEBHOOK_SECRETS.items()))
        + ")",
    )
    submit.set_defaults(run=signing.submit)

    doctor = sub.add_parser("doctor", help="check this machine's setup; exit 1 if a check fails")
    doctor.set_defaults(run=_doctor, url=None, token=None)
    cache.add_parser(sub)
    return parser


def _serve_options(parser: argparse.ArgumentParser, *, workers: bool) -> None:
    parser.add_argument("--host", help="bind address (HOOKAGENT_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (HOOKAGENT_PORT, default 8000)")
    parser.add_argument(
        "--api-processes",
        metavar="N",
        type=int,
        help="API processes serving the port (HOOKAGENT_API_PROCESSES, default half the cores)",
    )
    if workers:
        parser.add_argument(
            "--workers",
            metavar="N",
            type=int,
            help="worker processes, one loop each (HOOKAGENT_WORKERS, default 1)",
        )


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's JSON as it is")


def _client(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.add_argument(
        "--url", help="the hookagent API (HOOKAGENT_URL, default http://127.0.0.1:8000)"
    )
    parser.add_argument("--token", help="API token, sent as a Bearer token (HOOKAGENT_TOKEN)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    # Options given on the command line override the environment, field by field.
    names = ("host", "port", "workers", "api_processes")
    return get_settings(
        **{n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    )


def _check_access(settings: Settings) -> None:
    # Malformed tokens, or a public address with none, stop the server before it starts.
    from hookagent.api.auth import load_tokens

    load_tokens(settings)


def _check_startup(args: argparse.Namespace) -> None:
    # Redis, the data dir and the port are checked before Valkey or any process starts.
    from hookagent.cli.service import check_startup

    check_startup(
        args.settings,
        # A process handed its listening socket needs no free port.
        api=args.run in (_up, _server) and getattr(args, "listen_fd", None) is None,
        worker=args.run in (_up, _worker),
        embedded=args.run is _up,
    )


# The server side (FastAPI, uvicorn, the worker) is imported only by the commands that run
# it: the client commands start in a third of the time without it.


def _up(args: argparse.Namespace) -> int:
    from hookagent.cli.service import embedded_store
    from hookagent.cli.supervise import Supervisor

    settings: Settings = args.settings
    # Valkey outlives the supervisor's children: they stop first and hand their jobs back.
    with embedded_store(settings) as ready:
        supervisor = Supervisor(ready, workers=ready.workers, api_processes=ready.api_processes)
        return asyncio.run(supervisor.run())


def _server(args: argparse.Namespace) -> int:
    from hookagent.cli.service import event_loop_factory, run_services
    from hookagent.cli.supervise import Supervisor

    settings: Settings = args.settings
    if args.listen_fd is None and settings.api_processes > 1:
        return asyncio.run(
            Supervisor(settings, workers=0, api_processes=settings.api_processes).run()
        )
    # uvloop for the API alone: workers drive agent subprocesses, tested on asyncio's loop.
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run_services(settings, server=True, workers=0, listen_fd=args.listen_fd))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from hookagent.cli.service import run_services

    settings: Settings = args.settings
    asyncio.run(run_services(settings, server=False, workers=max(1, settings.workers)))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from hookagent.cli import doctor

    findings = doctor.run()
    marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[bold red]✗[/]"}
    console = Console(soft_wrap=True)
    for finding in findings:
        console.print(f"{marks[finding.level]} {finding.check}: {escape(finding.message)}")
    return doctor.exit_code(findings)
