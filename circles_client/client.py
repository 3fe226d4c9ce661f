"""`CircleClient`: a connection to one circle that signs in, runs scripts and reconnects.

When the connection drops, requests in flight fail with `ConnectionLost` (they may or may
not have run, so none is sent again). The next call opens a new connection, with retries
for up to `reconnect_timeout` seconds, and signs in again with the same key before it goes
out. A circle that does not exist (close 4404) is never retried.
"""

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from circles_client import circle_scripts
from circles_client.connection import Call, Connection
from circles_client.errors import CircleNotFound, ConnectionLost, RpcError
from circles_client.keys import SigningKey

logger = logging.getLogger("circles_client")

PLAY_TIMEOUT_MARGIN = 5.0  # seconds allowed on top of a play's own timeout_ms for the answer to arrive


def websocket_url(url: str) -> str:
    """`url` with an http(s) scheme turned into ws(s): the console page and the socket share a path."""
    for http, ws in (("http://", "ws://"), ("https://", "wss://")):
        if url.startswith(http):
            return ws + url[len(http) :]
    return url


class CircleClient:
    """A client of the circle at `url` (`ws://host:port/{circle_pk}`), signing in with `key`.

    `by_address=True` signs in with the key's Ethereum address instead of its public key, as a
    browser wallet does. Without a key the client stays signed out.
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
    ) -> None:
        self.url = websocket_url(url)
        self.key = SigningKey.from_hex(key) if isinstance(key, str) else key
        self.by_address = by_address
        self.request_timeout = request_timeout
        self.open_timeout = open_timeout
        self.reconnect = reconnect
        self.reconnect_timeout = reconnect_timeout
        self.reconnects = 0  # how many times a lost connection was replaced
        self._connection: Connection | None = None
        self._sign_in_with: SigningKey | None = None  # the key to sign in with again after a reconnect
        self._lock = asyncio.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"CircleClient({self.url!r}, key={self.key!r}, by_address={self.by_address})"

    # --- connecting ---------------------------------------------------------------------------

    async def open(self) -> "CircleClient":
        """Connect and, with a key, sign in.

        Raises `CircleNotFound`, `ConnectionLost` or `InvalidCredentials`.
        """
        async with self._lock:
            if self._connection is None or self._connection.closed:
                self._connection = await self._open_once(self.key)
        return self

    async def close(self) -> None:
        """Close the connection; the client is not reconnected after this."""
        self._closed = True
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
    def signed_in(self) -> bool:
        """Whether this client signed in (and will sign in again after a reconnect)."""
        return self._sign_in_with is not None

    async def _open_once(self, key: SigningKey | None) -> Connection:
        connection = await Connection.open(self.url, open_timeout=self.open_timeout)
        try:
            if key is not None:
                await self._sign_in_on(connection, key)
            else:
                # The server closes 4404 right after accepting an unknown circle: ask something cheap
                # so that connecting to one fails here rather than on the first call.
                await connection.request("whoami", timeout=self.request_timeout)
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _current(self) -> Connection:
        """The open connection, reconnecting (and signing in again) if it was lost."""
        if self._connection is not None and not self._connection.closed:
            return self._connection
        async with self._lock:
            if self._connection is not None and not self._connection.closed:
                return self._connection
            if self._closed:
                raise ConnectionLost(f"the client of {self.url} was closed")
            if self._connection is None:
                self._connection = await self._open_once(self.key)
                return self._connection
            lost = self._connection.lost
            if not self.reconnect or isinstance(lost, CircleNotFound):
                raise lost
            self._connection = await self._reconnect()
            self.reconnects += 1
            return self._connection

    async def _reconnect(self) -> Connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_timeout
        delay = 0.1
        while True:
            try:
                connection = await self._open_once(self._sign_in_with)
                logger.info("reconnected to %s", self.url)
                return connection
            except CircleNotFound:
                raise
            except ConnectionLost as exc:
                if loop.time() + delay > deadline:
                    raise ConnectionLost(
                        f"cannot reconnect to {self.url} within {self.reconnect_timeout:g} s: {exc}"
                    ) from exc
                logger.info("reconnecting to %s in %.1f s: %s", self.url, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

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


__all__ = ["CircleClient", "RpcError", "connect", "websocket_url"]
