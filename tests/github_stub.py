"""A local stand-in for the GitHub REST API's pull-request endpoint, recording requests."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.stub_server import LocalServer


class GitHubStub(LocalServer):
    """``POST /repos/{owner}/{repo}/pulls`` → 201 with number and html_url, or a set failure."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: tuple[int, dict[str, Any], dict[str, str]] | None = None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                stub.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                parts = self.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "repos" or parts[3] != "pulls":
                    self._send(404, {"message": "Not Found"})
                elif stub.fail_with is not None:
                    status, payload, headers = stub.fail_with
                    self._send(status, payload, headers)
                else:
                    number = len(stub.requests) + 40
                    owner, repo = parts[1], parts[2]
                    self._send(
                        201,
                        {
                            "number": number,
                            "state": "open",
                            "html_url": f"https://github.com/{owner}/{repo}/pull/{number}",
                            "head": {"ref": body["head"]},
                            "base": {"ref": body["base"]},
                        },
                    )

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=utf-8")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)
