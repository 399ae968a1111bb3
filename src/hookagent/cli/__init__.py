"""The command line: argument parsing, the HTTP client commands, the process runner (``up``),
the embedded Valkey and ``doctor``. It composes everything else; nothing imports it."""

from hookagent.cli.main import main

__all__ = ["main"]
