"""A threaded HTTP server on 127.0.0.1 for stand-ins of outside services."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LocalServer:
    """Serves ``handler`` on a free loopback port between ``__enter__`` and ``__exit__``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        # Handlers notify it after recording a request, so tests wait on it, not on sleeps.
        self.changed = threading.Condition()

    @property
    def url(self) -> str:
        """The base URL clients are pointed at."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def notify(self) -> None:
        """Wake everyone waiting in :meth:`wait_for` (called by handlers after recording)."""
        with self.changed:
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        """Block until ``predicate()`` holds (re-checked on every request); TimeoutError after."""
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise TimeoutError("the stub did not receive what was expected in time")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
