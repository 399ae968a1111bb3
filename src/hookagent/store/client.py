"""The client type every store takes: one Redis server, or a Redis Cluster."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import ConnectionPool, parse_url
from redis.exceptions import RedisError, ResponseError, SlotNotCoveredError

Client: TypeAlias = Redis | RedisCluster
# One command as execute_command takes it: name, then arguments.
Command: TypeAlias = tuple[Any, ...]


# What every connection is built with, whatever its kind: the URL's scheme (the connection
# class: TLS or not), TLS options (every ``ssl_*``), credentials, database and timeouts.
# The rest of a client's options (pool sizes, reply callbacks) belong to that client.
_CONNECTION_KEYS = frozenset(
    {
        "connection_class",
        "host",
        "port",
        "path",
        "username",
        "password",
        "credential_provider",
        "db",
        "socket_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "health_check_interval",
        "client_name",
        "decode_responses",
        "encoding",
        "encoding_errors",
    }
)


def connection_options(source: str | Mapping[str, Any], **defaults: Any) -> dict[str, Any]:
    """The options of a connection: a URL's, or a client's own, over ``defaults``.

    The one place a connection's options are decided: a ``rediss://`` URL's TLS (and its
    ``ssl_cert_reqs``, ``ssl_ca_certs``, ...), username, password and database reach every
    connection built from it, the pool's, the feed's and the cancel subscriber's alike. As
    with redis-py's ``from_url``, what the URL's query string says wins over a default.
    """
    options = parse_url(source) if isinstance(source, str) else source
    kept = {k: v for k, v in options.items() if k in _CONNECTION_KEYS or k.startswith("ssl_")}
    return defaults | kept


def plain_client(
    options: Mapping[str, Any],
    *,
    pool_class: type[ConnectionPool] = ConnectionPool,
    single: bool = False,
    **pool_options: Any,
) -> Redis:
    """A client of one server whose connections are all made with ``options``.

    It owns its pool (``aclose()`` closes it). ``single``: one connection, held for the
    client's life, which a blocking loop can close to end a BLOCK at once.
    """
    pool = pool_class(**options, **pool_options)
    client = Redis(connection_pool=pool, single_connection_client=single)
    client.auto_close_connection_pool = True
    return client


def node_client(cluster: RedisCluster, host: str, port: int, *, single: bool = False) -> Redis:
    """A plain client of one cluster node, with the cluster's TLS, credentials and timeouts."""
    options = connection_options(cluster.get_connection_kwargs(), host=host, port=port)
    return plain_client(options, single=single)


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


class _NodeClient:
    """A one-connection client to the node serving a stream's slot, for one blocking loop.

    Like a single server's ``client()``: its connection can be closed to end a BLOCK at
    once. After an error (MOVED once a failover moved the slot, or the node gone) the cluster
    client is asked about the key, which makes it learn the slot's new owner; the loop's
    retry then connects there.
    """

    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster
        self._plain: Redis | None = None
        self._node = ""

    @property
    def connection(self) -> Any:
        """The connection a BLOCK is waiting on, if any."""
        return self._plain.connection if self._plain is not None else None

    def get_connection_kwargs(self) -> dict[str, Any]:
        """The cluster's connection options (its socket timeout bounds a BLOCK)."""
        return self._cluster.get_connection_kwargs()

    async def xread(self, streams: dict[Any, Any], **kwargs: Any) -> Any:
        """XREAD on the node that holds the (one) stream's slot."""
        key = next(iter(streams))
        await self._cluster.initialize()  # learns the slots once (a no-op after that)
        node = self._cluster.get_node_from_key(key)
        if node is None:
            raise SlotNotCoveredError(f"no node serves the slot of {key}")
        if self._plain is None or node.name != self._node:
            await self.aclose()
            self._plain = node_client(self._cluster, node.host, int(node.port), single=True)
            self._node = node.name
        try:
            return await self._plain.xread(streams, **kwargs)
        except RedisError:
            with contextlib.suppress(RedisError):
                await self._cluster.exists(key)  # follows MOVED: the slot map is current again
            self._node = ""
            raise

    async def aclose(self) -> None:
        """Close the node connection (the cluster client belongs to whoever passed it in)."""
        plain, self._plain = self._plain, None
        if plain is not None:
            await plain.aclose()


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


@contextlib.asynccontextmanager
async def subscriber(client: Client) -> AsyncIterator[PubSub]:
    """A classic Pub/Sub connection, closed on the way out.

    On a cluster: a plain connection to a node the client knows, picked at random. A
    PUBLISH reaches every node of the cluster, and redis-py's ClusterPubSub, when its node
    is demoted by a failover, breaks in a way a retry cannot recover (seen in the tests).
    """
    if not isinstance(client, RedisCluster):
        async with client.pubsub() as pubsub:
            yield pubsub
        return
    node = random.choice(client.get_nodes())
    plain = node_client(client, node.host, int(node.port))
    try:
        async with plain.pubsub() as pubsub:
            yield pubsub
    finally:
        await plain.aclose()


def script_command(text: str, keys: Sequence[Any], args: Sequence[Any]) -> Command:
    """A Lua script as one command for :func:`batch` (EVAL: a pipeline cannot reload it)."""
    return ("EVAL", text, len(keys), *keys, *args)


async def _in_order(cluster: RedisCluster, group: list[Command]) -> list[Any]:
    replies: list[Any] = []
    for command in group:
        try:
            replies.append(await cluster.execute_command(*command))
        except ResponseError as exc:  # the rest of the group is not sent
            return replies + [exc] * (len(group) - len(replies))
    return replies


async def batch(
    client: Client, *phases: list[list[Command]], raise_on_error: bool = True
) -> list[Any]:
    """Run ``phases`` of command groups; the replies in command order.

    In order within a group, and phase after phase. On one server all in one pipeline (one
    round trip; the server runs it in order, so every group is in order too). On a cluster,
    where a pipeline refuses scripts, the groups of a phase side by side, each command
    awaited before the next of its group (a group stops at an error reply, which then stands
    for the rest of it). On one server every command runs even after another failed. An
    error reply is raised (the first), or with ``raise_on_error=False`` returned in its
    command's place; a lost connection raises either way.
    """
    flat: list[Any] = []
    if isinstance(client, RedisCluster):
        for phase in phases:
            for replies in await asyncio.gather(*(_in_order(client, group) for group in phase)):
                flat += replies
    else:
        async with client.pipeline(transaction=False) as pipe:
            for phase in phases:
                for group in phase:
                    for command in group:
                        pipe.execute_command(*command)
            flat = await pipe.execute(raise_on_error=False)
    if raise_on_error:
        for reply in flat:
            if isinstance(reply, Exception):
                raise reply
    return flat


def is_cluster(client: object) -> bool:
    """Whether ``client`` speaks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def dedicated(client: Client) -> Any:
    """A client for one blocking loop: one connection, to the server or the stream's node."""
    if isinstance(client, RedisCluster):
        return _NodeClient(client)
    return client.client()
