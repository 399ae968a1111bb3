"""HTTP status codes are numbers in ``api/errors.py`` only; everywhere else they have names.

Read from the syntax tree, not by grepping digits (a 200-character cap is no status): a
number from 100 to 599 counts as a status where the code answers with it or compares one,
that is as a ``status_code=``/``status=`` argument, the ``"status"`` of an ASGI message, the
first argument of ``error_response``/``HTTPException``, a key of a mapping, or compared with
a name that says ``status``. What a route declares for its OpenAPI description is
documentation and may stay a number: the ``status_code=`` of a route decorator or of
``add_api_route``, and the keys of a ``responses`` table (statuses to response objects).
"""

from __future__ import annotations

import ast
from pathlib import Path

import hookagent.api

API = Path(hookagent.api.__file__).parent
_ANSWERING_CALLS = {"error_response", "HTTPException"}
_RESPONSE_OBJECT_KEYS = {"description", "model", "content"}


def _is_status(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int and 100 <= node.value <= 599


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    return ""


def _is_responses_table(node: ast.Dict) -> bool:
    """``{404: {"description": ...}}``: statuses to OpenAPI response objects."""
    return bool(node.values) and all(
        isinstance(v, ast.Dict)
        and all(isinstance(k, ast.Constant) and k.value in _RESPONSE_OBJECT_KEYS for k in v.keys)
        for v in node.values
    )


def _declared(tree: ast.AST) -> set[int]:
    """The ``status_code=`` values of route declarations (by node id)."""
    routes = [
        decorator
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for decorator in node.decorator_list
    ]
    routes += [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n) == "add_api_route"]
    return {
        id(kw.value)
        for route in routes
        for kw in getattr(route, "keywords", [])
        if kw.arg == "status_code"
    }


def _suspects(node: ast.AST) -> list[ast.expr]:
    """The parts of ``node`` that would be statuses, were they numbers in range."""
    if isinstance(node, ast.Call):
        found = [kw.value for kw in node.keywords if kw.arg in ("status_code", "status")]
        if _name(node.func) in _ANSWERING_CALLS and node.args:
            found.append(node.args[0])
        return found
    if isinstance(node, ast.Dict):
        keys = [] if _is_responses_table(node) else [k for k in node.keys if k is not None]
        pairs = zip(node.keys, node.values, strict=True)
        return keys + [v for k, v in pairs if isinstance(k, ast.Constant) and k.value == "status"]
    if isinstance(node, ast.Compare):
        sides = [node.left, *node.comparators]
        return sides if any("status" in _name(side).lower() for side in sides) else []
    return []


def statuses_in(tree: ast.AST) -> list[int]:
    """Line numbers where a numeric HTTP status is used rather than declared, in order."""
    declared = _declared(tree)
    return sorted(
        s.lineno
        for node in ast.walk(tree)
        for s in _suspects(node)
        if _is_status(s) and id(s) not in declared
    )


def test_no_numeric_http_status_outside_api_errors() -> None:
    offenders = [
        f"{path.relative_to(API.parent)}:{line}"
        for path in sorted(API.rglob("*.py"))
        if path != API / "errors.py"
        for line in statuses_in(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == []


def test_the_check_finds_each_kind_of_use() -> None:
    source = """
@router.post("/x", status_code=202, responses={409: {"description": "conflict"}})
async def route():
    error_response(503, "not_ready", {})
    JSONResponse(body, status_code=200)
    await send({"type": "http.response.start", "status": 413})
    outcomes = {429: "rate_limited"}
    if status == 401 or 400 <= response.status_code < 500:
        raise HTTPException(404, "gone")
    return one_line(text, 200)
router.add_api_route("/y", route, methods=["POST"], status_code=202)
"""
    assert statuses_in(ast.parse(source)) == [4, 5, 6, 7, 8, 8, 8, 9]
