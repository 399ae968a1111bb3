"""The CLI's client of the REST API: calls named by ``--url``, errors, SSE with resume."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
from rich.console import Console

from hookagent.errors import HookagentError

RECONNECT_MAX_S = 10.0


TOKEN_HINT = "pass --token or set HOOKAGENT_TOKEN"


def checked(response: httpx.Response, *, hint: str = TOKEN_HINT) -> Any:
    """The JSON body, or the API's error detail as a :class:`HookagentError`.

    ``hint``: what to do about a 401 (the API token, or a webhook's secret).
    """
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        if response.status_code == 401:
            detail = f"{detail} ({hint})"
        raise HookagentError(f"{response.status_code}: {detail}")
    return response.json()


def auth_headers(args: argparse.Namespace) -> dict[str, str]:
    """``Authorization: Bearer`` with ``--token`` / ``HOOKAGENT_TOKEN``, if one is given."""
    token = getattr(args, "token", None)
    return {"Authorization": f"Bearer {token}"} if token else {}


def request(
    args: argparse.Namespace, method: str, path: str, *, hint: str = TOKEN_HINT, **kwargs: Any
) -> httpx.Response:
    """A call to the API named by ``--url``; an error answer raises (see :func:`checked`)."""
    headers = {**auth_headers(args), **kwargs.pop("headers", {})}
    url = f"{args.url.rstrip('/')}{path}"
    response = httpx.request(method, url, headers=headers, timeout=30, **kwargs)
    checked(response, hint=hint)
    return response


def get(args: argparse.Namespace, path: str, **params: Any) -> Any:
    """GET a JSON resource of the API named by ``--url``."""
    return request(args, "GET", path, params=params).json()


def post(args: argparse.Namespace, path: str, **kwargs: Any) -> Any:
    """POST to the API named by ``--url``."""
    return request(args, "POST", path, **kwargs).json()


def sse_events(
    client: httpx.Client, url: str, params: dict[str, Any], last_id: int | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs; reconnects with ``Last-Event-ID`` after a dropped connection."""
    backoff = 0.5
    while True:
        headers = {"Last-Event-ID": str(last_id)} if last_id is not None else {}
        try:
            with client.stream(
                "GET", url, params=params, headers=headers, timeout=None
            ) as response:
                checked_stream(response)
                backoff = 0.5
                event, data = "message", ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line.startswith("id: "):
                        last_id = int(line[4:])
                    elif line == "" and data:
                        yield event, json.loads(data)
                        if event == "end":
                            return
                        event, data = "message", ""
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError) as exc:
            Console(stderr=True).print(
                f"[dim]connection lost ({exc!r}); resuming after {last_id}[/]"
            )
            time.sleep(backoff)  # reconnect backoff, not a poll
            backoff = min(backoff * 2, RECONNECT_MAX_S)


def checked_stream(response: httpx.Response) -> None:
    """Raise the API's error for a stream that did not start."""
    if response.status_code >= 400:
        response.read()
        checked(response)
