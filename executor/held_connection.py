"""Redis connections held for per-job commands (worker, producer), without redis-py's per-call machinery.

Scripts go through them like any command: `LuaScript.run(connection.call, ...)` (`executor.lua`).
"""

from typing import Any

import redis
import redis.asyncio as aioredis

from executor.redis_clients import REDIS_DOWN


class HeldConnection:
    """One connection made from `client`'s pool settings and kept for the process's hot path.

    `Redis.execute_command` checks a connection out of the pool, runs the call under its retry
    policy and passes the reply through response callbacks: ~60 µs of CPU per command on the
    2-vCPU machine of docs/benchmarks/play.md, against ~18 µs to send on a held connection and
    read the reply. Replies come back raw (bytes, integers, lists, maps in RESP3, None). A lost
    connection raises redis-py's ConnectionError or TimeoutError and is dropped (the next
    command reconnects); an error reply raises ResponseError.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client  # keeps the pool alive: a Sentinel pool's connections refer to it weakly
        self.connection = client.connection_pool.make_connection()

    def call(self, *args: Any) -> Any:
        """Send one command and return its raw reply."""
        try:
            self.connection.send_command(*args)
            return self.connection.read_response()
        except REDIS_DOWN:
            self.connection.disconnect()
            raise

    def close(self) -> None:
        """Close the connection."""
        self.connection.disconnect()


class AsyncHeldConnection:
    """`HeldConnection` for an event loop, sending many commands per write: one caller at a time."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client  # keeps the pool alive: a Sentinel pool's connections refer to it weakly
        self.connection = client.connection_pool.make_connection()

    async def call_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send `commands` in one write and read their replies in order.

        An error reply is returned in its place as a ResponseError (the other replies still
        count); a lost connection raises and is dropped, the next call reconnects.
        """
        connection = self.connection
        await self._drop_if_stale()
        try:
            await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
            return replies
        except BaseException:  # lost, or cancelled mid-reply: the connection's state is unknown
            await connection.disconnect()
            raise

    async def _drop_if_stale(self) -> None:
        """Drop a connection the server closed (a restart) or left bytes on, before sending on it.

        Without this, the first commands after a Redis restart are written to the dead socket and
        fail; nothing was sent yet here, so reconnecting first is safe (redis-py's pool makes the
        same check when it hands out a connection).
        """
        connection = self.connection
        try:
            stale = connection.is_connected and await connection.can_read()
        except REDIS_DOWN:
            stale = True
        if stale:
            await connection.disconnect()
