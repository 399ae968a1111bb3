"""What the benchmarks share: run against --redis-url, or an embedded Valkey in a temp dir."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from hookagent.embedded import EmbeddedValkey


def run(
    main: Callable[[argparse.Namespace], Coroutine[Any, Any, None]], args: argparse.Namespace
) -> None:
    """``main(args)`` with ``args.redis_url`` set, starting (and stopping) a Valkey if needed."""
    if args.redis_url:
        asyncio.run(main(args))
        return
    with tempfile.TemporaryDirectory() as tmp, EmbeddedValkey(Path(tmp)) as valkey:
        args.redis_url = valkey.url
        asyncio.run(main(args))
