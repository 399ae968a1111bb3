"""One place that turns errors into JSON answers."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import Scope, Send

from hookagent import errors
from hookagent.errors import HookagentError
from hookagent.store import StoreConnectionError, StoreTimeoutError

log = logging.getLogger(__name__)

# HTTP lives here alone: the domain raises errors, this table says what each one answers;
# the few answers that are no error have names below, for the routes and middleware.
OK = 200
ACCEPTED = 202
NO_CONTENT = 204
NOT_FOUND = 404
INTERNAL_ERROR = 500
UNAVAILABLE = 503
_STATUS: dict[type[HookagentError], int] = {
    errors.PayloadError: 422,
    errors.SignatureError: 401,
    errors.NotAnApprover: 403,
    errors.TaskNotFound: 404,
    errors.ConflictError: 409,
    errors.FencedOut: 409,
    errors.WorkspaceError: 422,
    errors.PullRequestError: 502,
    errors.OutboundError: 502,
    errors.BodyTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.MalformedBody: 400,
    errors.RateLimited: 429,
    errors.QueueFull: 503,
    errors.InvalidRequest: 422,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
}


def status_of(error: type[HookagentError]) -> int:
    """The HTTP status an error class answers (its closest listed class; 500 when none is)."""
    for cls in error.__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return INTERNAL_ERROR


def http_status(exc: HookagentError) -> int:
    """The HTTP status ``exc`` answers."""
    return status_of(type(exc))


def is_server_error(status: int) -> bool:
    """Whether ``status`` says the server failed (5xx) rather than the request."""
    return status >= INTERNAL_ERROR


def ws_close_code(exc: HookagentError) -> int:
    """The WebSocket close code of ``exc``: 4000 + its HTTP status for a 4xx, else 1011.

    RFC 6455 leaves 4000-4999 to applications, so 4401, 4403 and 4422 mirror the HTTP
    answers; a server's failure is 1011 (internal error).
    """
    status = http_status(exc)
    return 4000 + status if 400 <= status < 500 else 1011


async def send_error(
    scope: Scope,
    send: Send,
    exc: HookagentError,
    *,
    reason: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer ``exc`` from ASGI middleware, before the app: our JSON error, or a close.

    A WebSocket is closed before accept (the server answers the upgrade with 403) with
    :func:`ws_close_code` and ``reason`` (the error's code unless given).
    """
    if scope["type"] == "websocket":
        code = ws_close_code(exc)
        await send({"type": "websocket.close", "code": code, "reason": reason or exc.code})
        return
    body = json.dumps({"error": exc.code, "detail": exc.message}).encode()
    head = [(b"content-type", b"application/json"), *headers]
    await send({"type": "http.response.start", "status": http_status(exc), "headers": head})
    await send({"type": "http.response.body", "body": body})


INTERNAL_DETAIL = "internal error; see the server log"


class ErrorBody(BaseModel):
    """Every error answer: a stable ``error`` code and a ``detail`` (text, or per-field list)."""

    error: str
    detail: Any = None


def describe_errors(app: FastAPI) -> None:
    """Make ``/openapi.json`` declare our 422 body instead of FastAPI's ``HTTPValidationError``.

    FastAPI documents every route with parameters as answering ``{"detail": [...]}`` on 422,
    while our handlers answer ``{"error", "detail"}``: clients generated from the description
    (and schemathesis) would be told a shape the server never sends.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            _declare_error_body(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare_error_body(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    components["ErrorBody"] = ErrorBody.model_json_schema()
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None:
                answer["content"] = body


def encode_json(content: Any) -> bytes:
    """``content`` as the JSON Starlette's ``JSONResponse`` sends, encoded by orjson.

    orjson refuses an integer past 64 bits (an agent's raw event may hold one): json
    encodes those. orjson writes NaN and infinities as null, as pydantic's JSON mode does.
    """
    try:
        return orjson.dumps(content)
    except TypeError:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def error_response(status: int, code: str, detail: object) -> JSONResponse:
    """The JSON shape of every error: ``{"error": code, "detail": ...}``."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


async def _hookagent(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HookagentError)  # registered for this type only
    return error_response(http_status(exc), exc.code, exc.message)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return error_response(422, "invalid_request", detail)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, exc.detail)


def failure(method: str, path: str, exc: Exception) -> tuple[int, dict[str, Any]]:
    """The status and body of an exception no route answered (logged when it is ours to fix).

    Our errors answer their own; Redis unreachable or too slow is a 503; anything else is a
    500 whose body holds an id to find the logged traceback by, never the exception itself
    (it may quote a Redis command, a key or a path).
    """
    if isinstance(exc, HookagentError):
        return http_status(exc), {"error": exc.code, "detail": exc.message}
    if isinstance(exc, StoreConnectionError | StoreTimeoutError):
        log.warning("Redis unavailable during %s %s: %r", method, path, exc)
        detail = "Redis is unreachable; try again shortly"
        return UNAVAILABLE, {"error": "store_unavailable", "detail": detail}
    request_id = secrets.token_hex(6)
    log.exception("unhandled error in %s %s [request %s]", method, path, request_id, exc_info=exc)
    return INTERNAL_ERROR, {
        "error": "internal_error",
        "detail": INTERNAL_DETAIL,
        "request_id": request_id,
    }


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    status, body = failure(request.method, request.url.path, exc)
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``, and describe their 422 body in its OpenAPI."""
    describe_errors(app)
    app.add_exception_handler(HookagentError, _hookagent)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(StoreConnectionError, _unexpected)
    app.add_exception_handler(StoreTimeoutError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
