"""The client type every store takes: one Redis server, or a Redis Cluster."""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

Client: TypeAlias = Redis | RedisCluster


class BoundedCluster(RedisCluster):
    """A cluster client that waits for a free connection instead of failing the command.

    redis-py's cluster client raises MaxConnectionsError when a node's pool is exhausted:
    here at most ``in_flight`` commands run at once, below the pools' size, and the rest
    wait, as with a single server's BlockingConnectionPool. And it learns the slots before
    any command goes out: a burst of commands on a client that has not (seen: 300
    concurrent EVALs on a fresh client) ran a few of them twice.
    """

    def __init__(self, *args: Any, in_flight: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight = asyncio.Semaphore(in_flight)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run one command once a slot of the ``in_flight`` bound is free."""
        if self._initialize:  # first use, or the slots changed (a failover): learn them first
            await self.initialize()
        async with self._in_flight:
            return await super().execute_command(*args, **kwargs)


class _SharedCluster:
    """A cluster client standing in for a one-connection client (see :func:`dedicated`)."""

    # No one connection to close to end a BLOCK early: the loop ends within its BLOCK slice.
    connection = None

    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster

    def get_connection_kwargs(self) -> dict[str, Any]:
        """The cluster's connection options (its socket timeout bounds a BLOCK)."""
        return self._cluster.get_connection_kwargs()

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        """XREAD on the node that holds the stream's slot (followed across failovers)."""
        return await self._cluster.xread(*args, **kwargs)

    async def aclose(self) -> None:
        """Nothing to hand back: the cluster client belongs to whoever passed it in."""


class _EvalScript:
    """A Lua script a cluster client sends whole each time (EVAL, never EVALSHA)."""

    def __init__(self, cluster: RedisCluster, text: str) -> None:
        self._cluster = cluster
        self._text = text

    async def __call__(self, keys: list[Any] | None = None, args: list[Any] | None = None) -> Any:
        """Run the script on the node of ``keys``' slot."""
        keys = keys or []
        return await self._cluster.eval(self._text, len(keys), *keys, *(args or []))


def register_script(client: Client, text: str) -> Any:
    """A callable Lua script (``await script(keys=[...], args=[...])``) for ``client``.

    A single server gets EVALSHA with a reload on NOSCRIPT. A cluster gets EVAL: a node
    promoted by a failover has no scripts cached, and redis-py's cluster client, when many
    calls hit NOSCRIPT at once, loses connections mid-command and may run a script twice.
    """
    if isinstance(client, RedisCluster):
        return _EvalScript(client, text)
    return client.register_script(text)


def is_cluster(client: object) -> bool:
    """Whether ``client`` speaks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def dedicated(client: Client) -> Any:
    """A client for one blocking loop: one pooled connection of a server's client.

    A cluster client keeps a pool per node and takes a connection per command, so a loop
    blocking on it holds one connection of the stream's node for as long as it blocks.
    """
    if isinstance(client, RedisCluster):
        return _SharedCluster(client)
    return client.client()
