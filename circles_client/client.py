"""`CircleClient`: a connection to one circle that signs in, runs scripts and reconnects.

The connection is kept alive with WebSocket pings. When it drops, requests in flight fail with
`ConnectionLost` (they may or may not have run, so none is sent again) and a background task
reconnects at once, waiting a fully jittered, exponentially growing time between attempts
(`circles_client.backoff`); it signs in again with the same key and redoes what the old
connection had set up (`circles_client.after_sign_in`: its subscriptions, subscribed again) before
any call uses the new one. Calls
made meanwhile wait for it, up to `reconnect_timeout` seconds. A closed client, a client made
with `reconnect=False` and a circle that does not exist (close 4404) are never reconnected.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable
from typing import Any

from circles_client import circle_scripts
from circles_client.after_sign_in import AfterSignIn
from circles_client.backoff import Backoff
from circles_client.connection import Call, Connection
from circles_client.errors import CircleNotFound, CirclesError, ConnectionLost, RpcError
from circles_client.jobs import JobMethods
from circles_client.keys import SigningKey
from circles_client.records import RecordMethods
from circles_client.subscriptions import CatchUp, Subscription, Subscriptions

logger = logging.getLogger("circles_client")

PLAY_TIMEOUT_MARGIN = 5.0  # seconds allowed on top of a play's own timeout_ms for the answer to arrive


def websocket_url(url: str) -> str:
    """`url` with an http(s) scheme turned into ws(s): the console page and the socket share a path."""
    for http, ws in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(http):
            return ws + url[len(http) :]
    return url


class CircleClient(JobMethods, RecordMethods):
    """A client of the circle at `url` (`ws://host:port/{circle_pk}`), signing in with `key`.

    `by_address=True` signs in with the key's Ethereum address instead of its public key, as a
    browser wallet does. Without a key the client stays signed out.

    Reconnecting: attempt `n` after a drop waits a random time between 0 and
    `min(reconnect_max_delay, reconnect_delay * 2**n)` seconds; attempts go on until one
    succeeds or the client is closed, and a call waits at most `reconnect_timeout` for them.
    A ping goes out every `ping_interval` seconds and a pong must come back within
    `ping_timeout` (None: no pings), so a connection that died silently is noticed too, at
    most `close_timeout` later (the wait for the peer's close frame).
    """

    def __init__(
        self,
        url: str,
        key: SigningKey | str | None = None,
        *,
        by_address: bool = False,
        request_timeout: float = 30.0,
        open_timeout: float = 10.0,
        reconnect: bool = True,
        reconnect_timeout: float = 15.0,
        reconnect_delay: float = 0.25,
        reconnect_max_delay: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 5.0,
    ) -> None:
        self.url = websocket_url(url)
        self.key = SigningKey.from_hex(key) if isinstance(key, str) else key
        self.by_address = by_address
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.reconnect = reconnect
        self.reconnect_timeout = reconnect_timeout
        self.backoff = Backoff(reconnect_delay, reconnect_max_delay)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.reconnects = 0  # how many times a lost connection was replaced
        self.last_reconnect_error: CirclesError | None = None  # why the latest failed attempt failed
        self._connection: Connection | None = None
        self._sign_in_with: SigningKey | None = None  # the key to sign in with again after a reconnect
        self._after_sign_in = AfterSignIn()  # what a new connection redoes once signed in again
        self._subscriptions = Subscriptions(self._after_sign_in, lambda: self._connection)
        self._reconnecting: asyncio.Task[Connection] | None = None
        self._circle_gone: CircleNotFound | None = None  # a reconnection found no such circle: stop
        self._random = random.Random()  # the backoff's jitter (tests seed their own)
        self._lock = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"CircleClient({self.url!r}, key={self.key!r}, by_address={self.by_address})"

    # --- connecting ---------------------------------------------------------------------------

    async def open(self) -> "CircleClient":
        """Connect and, with a key, sign in (after a drop: wait for the reconnection).

        Raises `CircleNotFound`, `ConnectionLost` or `InvalidCredentials`.
        """
        await self._current()
        return self

    async def close(self) -> None:
        """Close the connection and stop reconnecting; the client is not reconnected after this."""
        self._closed = True
        self._subscriptions.end_all(ConnectionLost(f"the client of {self.url} was closed"))
        if self._reconnecting is not None and not self._reconnecting.done():
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, CirclesError):
                await self._reconnecting
        if self._connection is not None:
            await self._connection.close()

    async def __aenter__(self) -> "CircleClient":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.closed

    @property
    def reconnecting(self) -> bool:
        """Whether a lost connection is being replaced in the background right now."""
        return self._reconnecting is not None and not self._reconnecting.done()

    @property
    def signed_in(self) -> bool:
        """Whether this client signed in (and will sign in again after a reconnect)."""
        return self._sign_in_with is not None

    async def _open_once(self, key: SigningKey | None) -> Connection:
        """A new connection, signed in with `key` (if any) and with the after-sign-in steps redone."""
        connection = await Connection.open(
            self.url,
            open_timeout=self.open_timeout,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            on_notification=self._subscriptions.deliver,
        )
        try:
            if key is not None:
                await self._sign_in_on(connection, key)
            else:
                # The server closes 4404 right after accepting an unknown circle: ask something cheap
                # so that connecting to one fails here rather than on the first call.
                await connection.request("whoami", timeout=self.request_timeout)
            await self._after_sign_in.replay(connection)
        except BaseException:
            await connection.close()
            raise
        return connection

    def _adopt(self, connection: Connection) -> None:
        self._connection = connection
        connection.when_lost(self._connection_lost)

    def _connection_lost(self, connection: Connection) -> None:
        """Start replacing `connection` in the background, unless it must not be replaced."""
        if connection is not self._connection or self._closed or self.reconnecting:
            return
        if not self.reconnect or isinstance(connection.lost, CircleNotFound) or self._circle_gone:
            self._subscriptions.end_all(connection.lost or self._circle_gone)
            return
        logger.info("lost the connection to %s: %s", self.url, connection.lost)
        self._reconnecting = asyncio.get_running_loop().create_task(
            self._reconnect(), name=f"circles-reconnect {self.url}"
        )
        self._reconnecting.add_done_callback(_retrieve_outcome)

    async def _current(self) -> Connection:
        """The open connection; after a drop, the one the background reconnection brings."""
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection
        if self._closed:
            raise ConnectionLost(f"the client of {self.url} was closed")
        if connection is None:
            async with self._lock:
                if self._connection is None:
                    self._adopt(await self._open_once(self.key))
            return await self._current()
        lost = self._circle_gone or connection.lost
        if not self.reconnect or isinstance(lost, CircleNotFound):
            raise lost
        self._connection_lost(connection)  # in case the reader's callback has not run yet
        task = self._reconnecting
        if task is None:
            raise lost
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.reconnect_timeout)
        except TimeoutError:
            reason = self.last_reconnect_error or lost
            raise ConnectionLost(
                f"cannot reconnect to {self.url} within {self.reconnect_timeout:g} s: {reason}"
            ) from None
        except asyncio.CancelledError:
            if self._closed and task.cancelled():  # close() stopped the reconnection, not our caller
                raise ConnectionLost(f"the client of {self.url} was closed") from None
            raise

    async def _reconnect(self) -> Connection:
        """Attempt after attempt, with jittered backoff, until a new connection is signed in."""
        for attempt, delay in enumerate(self.backoff.delays(self._random)):
            logger.info("reconnecting to %s in %.2f s (attempt %d)", self.url, delay, attempt + 1)
            await asyncio.sleep(delay)
            try:
                connection = await self._open_once(self._sign_in_with)
            except CircleNotFound as exc:
                self.last_reconnect_error = self._circle_gone = exc
                logger.warning("not reconnecting to %s: %s", self.url, exc)
                self._subscriptions.end_all(exc)
                raise
            except CirclesError as exc:  # refused, timed out, rate limited: the next attempt may do
                self.last_reconnect_error = exc
                logger.info("reconnecting to %s failed: %s", self.url, exc)
                continue
            self._adopt(connection)
            self.reconnects += 1
            self.last_reconnect_error = None
            logger.info("reconnected to %s", self.url)
            return connection
        raise AssertionError("the backoff schedule is endless")

    # --- signing in -----------------------------------------------------------------------------

    def _subject(self, key: SigningKey) -> str:
        return key.address if self.by_address else key.pubkey

    async def _sign_in_on(self, connection: Connection, key: SigningKey) -> None:
        subject = self._subject(key)
        text = await connection.request("fetch_nonce", {"pubkey": subject}, timeout=self.request_timeout)
        params = {"pubkey": subject, "signature": key.sign(text)}
        await connection.request("authenticate", params, timeout=self.request_timeout)
        self._sign_in_with = key
        logger.debug("signed in to %s as %s", self.url, subject)

    async def sign_in(self, key: SigningKey | str | None = None) -> dict[str, Any]:
        """Sign in with `key` (default: the client's own); returns `whoami` afterwards."""
        key = SigningKey.from_hex(key) if isinstance(key, str) else (key or self.key)
        if key is None:
            raise ValueError("no key to sign in with")
        await self._sign_in_on(await self._current(), key)
        return await self.whoami()

    async def logout(self) -> bool:
        """Sign out; the connection stays open and is not signed in again after a reconnect."""
        result = await self.call("logout")
        self._sign_in_with = None
        return result

    # --- calls ----------------------------------------------------------------------------------

    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        """Call any method and return its result; errors are raised as their `RpcError` subclass."""
        connection = await self._current()
        return await connection.request(method, params, timeout=timeout or self.request_timeout)

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no answer, not even an error)."""
        await (await self._current()).notify(method, params)

    async def batch(
        self, calls: Iterable[Call], *, raise_errors: bool = True, timeout: float | None = None
    ) -> list[Any]:
        """Send `(method, params)` pairs as one batch; their results in order.

        With `raise_errors` the first failed entry's exception is raised; without it, failed
        entries are returned as exception objects in place of their results.
        """
        connection = await self._current()
        answers = await connection.batch(calls, timeout=timeout or self.request_timeout)
        if raise_errors:
            for ok, value in answers:
                if not ok:
                    raise value
        return [value for _, value in answers]

    async def send_raw(self, frame: str | bytes, *, timeout: float | None = None) -> Any:
        """Send a frame exactly as given (see `Connection.send_raw`); for probing and tests."""
        return await (await self._current()).send_raw(frame, timeout=timeout or self.request_timeout)

    # --- subscriptions ----------------------------------------------------------------------------

    async def subscribe(self, topic: str, *, catch_up: CatchUp | None = None, **params: Any) -> Subscription:
        """Subscribe to `topic` (`"jobs"`: `job_id=…`, or `all=True` for the owner and admins).

        Returns a `Subscription`: `async for result in it` yields each notification's `result`.
        It is subscribed again after every reconnect (under the server's new id), then
        `catch_up(connection)` runs if given and its result (unless None) is queued like a
        notification's. Raises the server's refusal (`JobNotFound`, `RateLimited`, ...).
        """
        return await self._subscriptions.subscribe(await self._current(), topic, params, catch_up)

    async def unsubscribe(self, subscription: Subscription) -> bool:
        """End `subscription` (its iteration stops); True when the server still had it."""
        return await self._subscriptions.unsubscribe(subscription)

    @property
    def subscriptions(self) -> int:
        """How many subscriptions are active."""
        return len(self._subscriptions)

    async def fetch_nonce(self, pubkey: str) -> str:
        """The sign-in text for `pubkey` (a public key or an Ethereum address)."""
        return await self.call("fetch_nonce", {"pubkey": pubkey})

    async def authenticate(self, pubkey: str, signature: str) -> bool:
        """Redeem the pending sign-in text with its signature (low level; `sign_in` does both steps)."""
        return await self.call("authenticate", {"pubkey": pubkey, "signature": signature})

    async def whoami(self) -> dict[str, Any]:
        """`{circle, authenticated, pubkey, role}` of this connection."""
        return await self.call("whoami")

    async def play(self, script: str, *, timeout_ms: int | None = None) -> dict[str, Any]:
        """Run a Rhai script: `{output, value, logs, run_id, elapsed_ms}`; `ExecutionError` if it fails."""
        params: dict[str, Any] = {"script": script}
        timeout = self.request_timeout
        if timeout_ms is not None:
            params["timeout_ms"] = timeout_ms
            timeout = max(timeout, timeout_ms / 1000 + PLAY_TIMEOUT_MARGIN)
        return await self.call("play", params, timeout=timeout)

    async def discover(self) -> dict[str, Any]:
        """The server's OpenRPC document."""
        return await self.call("rpc.discover")

    # --- the circle and its members (scripts run with `play`: the server's rules apply) -------

    async def _value(self, script: str) -> Any:
        return (await self.play(script))["value"]

    async def members(self) -> list[dict[str, Any]]:
        """`circle::members()`: the owner, then every member, as `{pubkey, address, role, name}`."""
        return await self._value(circle_scripts.MEMBERS)

    async def add_member(self, key: str, role: str = "member", name: str | None = None) -> bool:
        """Give `key` (public key or Ethereum address) `role`; True when added. Owner or admin only."""
        return await self._value(circle_scripts.add_member(key, role, name))

    async def set_role(self, key: str, role: str) -> bool:
        """Change a member's role; True when it changed."""
        return await self._value(circle_scripts.set_role(key, role))

    async def remove_member(self, key: str) -> bool:
        """Remove a member; True when it was one."""
        return await self._value(circle_scripts.remove_member(key))

    async def circle_info(self) -> dict[str, Any]:
        """`circle::info()`: `{id, name, description, allow_guests, members}`."""
        return await self._value(circle_scripts.INFO)

    async def update_circle(
        self, *, name: str | None = None, description: str | None = None, allow_guests: bool | None = None
    ) -> dict[str, list]:
        """Change the circle's settings (owner only); returns what changed: field -> [old, new]."""
        return await self._value(
            circle_scripts.update(name=name, description=description, allow_guests=allow_guests)
        )


class _Connecting:
    """What `connect` returns: await it for an open client, or use it with `async with`."""

    def __init__(self, client: CircleClient) -> None:
        self.client = client

    def __await__(self):
        return self.client.open().__await__()

    async def __aenter__(self) -> CircleClient:
        return await self.client.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


def connect(url: str, key: SigningKey | str | None = None, **options: Any) -> _Connecting:
    """Connect to the circle at `url` and sign in with `key` (options as `CircleClient` takes them).

    `client = await connect(url, key)` or `async with connect(url, key) as client: ...`.
    """
    return _Connecting(CircleClient(url, key, **options))


def _retrieve_outcome(task: asyncio.Task) -> None:
    """Mark a finished reconnection's error as seen: the callers waiting for it got it already."""
    if not task.cancelled():
        task.exception()


__all__ = ["CircleClient", "RpcError", "connect", "websocket_url"]
