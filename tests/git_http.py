"""A smart-HTTP git server on 127.0.0.1: ``git http-backend`` behind Basic auth."""

from __future__ import annotations

import base64
import gzip
import os
import re
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.stub_server import LocalServer

_HEADER_END = re.compile(rb"\r?\n\r?\n")


class GitHttpServer(LocalServer):
    """Serves the bare repositories under ``root``; every request needs ``user:token``."""

    def __init__(self, root: Path, *, user: str, token: str) -> None:
        expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        self.authorized = 0
        self.refused = 0
        # Each git-upload-pack exchange: the client's request (un-gzipped), the reply's size.
        self.uploads: list[tuple[bytes, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                return

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                if self.headers.get("Authorization") != expected:
                    server.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                server.authorized += 1
                # Git sends small bodies with a Content-Length; chunked ones (over
                # http.postBuffer, 1 MiB) do not occur with the tests' tiny repositories.
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path, _, query = self.path.partition("?")
                env = {
                    "PATH": os.environ["PATH"],
                    "GIT_PROJECT_ROOT": str(root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REMOTE_USER": user,  # http-backend allows pushes by authenticated users
                    "REMOTE_ADDR": "127.0.0.1",
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
                head, payload = _HEADER_END.split(out, maxsplit=1)
                headers = [h.split(":", 1) for h in head.decode().splitlines() if ":" in h]
                status = next((v.strip() for k, v in headers if k.lower() == "status"), "200")
                self.send_response(int(status.split()[0]))
                for name, value in headers:
                    if name.lower() != "status":
                        self.send_header(name, value.strip())
                if self.command == "POST" and path.endswith("/git-upload-pack"):
                    gzipped = self.headers.get("Content-Encoding", "") == "gzip"
                    server.uploads.append(
                        (gzip.decompress(body) if gzipped else body, len(payload))
                    )
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        super().__init__(Handler)

    def __enter__(self) -> GitHttpServer:
        super().__enter__()
        return self
