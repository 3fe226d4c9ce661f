"""`CircleConsumer`: one WebSocket connection to a circle, a thin shell that frames and routes.

The JSON-RPC rules live in `circles.jsonrpc`, the methods in `circles.methods`, the limits
in `circles.limits` and `circles.address_limits`; this module only moves frames, enforces the
limits and runs slow requests as tasks so a long `play` never delays a `whoami` on the same socket.
On shutdown `circles.shutdown.drain_all` has every connection `drain` itself.
"""

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, overload

from asgiref.typing import WebSocketDisconnectEvent, WebSocketSendEvent
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from auth_secp import ChallengeBook
from circles import job_methods, record_methods, subscription_methods
from circles.address_limits import AttemptWindows, connections
from circles.admission import release_pass
from circles.answering import answer
from circles.event_hub import process_event_hub
from circles.jsonrpc import (
    PARSE_ERROR,
    RATE_LIMITED,
    InvalidEntry,
    Request,
    RpcError,
    encode,
    failure,
    parse_frame,
)
from circles.limits import ConnectionLimits
from circles.lookups import find_active_circle
from circles.methods import registry
from circles.peer_address import scope_address
from circles.play import play_runner_for
from circles.session import CircleSession
from circles.shutdown import CLOSE_GOING_AWAY, SHUTDOWN_REASON, shutting_down, track, untrack
from circles.sign_in_limits import sign_in_limiter
from circles.subscriptions import CLOSE_TOO_MANY_UNREAD, TOO_MANY_UNREAD_REASON, Subscriptions
from circles.url_sign_in import sign_in_at_connect

logger = logging.getLogger("circles.consumer")

CLOSE_INVALID_FRAMES = 4400
CLOSE_CIRCLE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429
CLOSE_MESSAGE_TOO_BIG = 1009
# After the grace, how long requests that were given up on may take to send that answer.
GIVEN_UP_SECONDS = 1.0
# How long a 4408 close may wait for a client that does not read to take the close frame; after
# that the connection is dropped (the server's send buffers would otherwise hold it forever).
SLOW_READER_CLOSE_SECONDS = 10.0
REGISTERED = (job_methods, record_methods, subscription_methods)  # their methods join the registry on import
# One "refused: too many connections" line per address per minute, not one per refused socket.
refusals_logged = AttemptWindows(60.0)


class ConnectionLog(logging.LoggerAdapter):
    """Prefixes every line with the connection's circle and peer."""

    def __init__(self, logger: logging.Logger, *, circle: str, peer: str) -> None:
        super().__init__(logger, {"circle": circle, "peer": peer})
        self.prefix = f"[circle={circle} peer={peer}]"

    def process(self, msg: str, kwargs: Any) -> tuple[str, Any]:
        return f"{self.prefix} {msg}", kwargs


def peer_of(scope: Mapping[str, Any]) -> str:
    """The client's address as the ASGI server saw it."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


def in_flight_full() -> RpcError:
    """The -32029 answered to a request over the in-flight bound."""
    return RpcError(RATE_LIMITED, data={"reason": "too many requests in flight"})


def over_the_rate() -> RpcError:
    """The -32029 answered to a request over the request rate."""
    return RpcError(RATE_LIMITED, data={"reason": "request rate"})


def binary_frame() -> RpcError:
    """The -32700 answered to a binary frame."""
    return RpcError(PARSE_ERROR, data={"reason": "send UTF-8 JSON text frames"})


def frame_too_big(text: str, limit: int) -> bool:
    """Whether a text frame exceeds `limit` bytes once UTF-8 encoded (encoding only when it could)."""
    return len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit)


def refuse_batch(entries: list[Request | InvalidEntry | None]) -> list[dict[str, Any]]:
    """The responses to a batch refused for the in-flight bound (notifications get none)."""
    return [
        failure(entry.id, entry.error if isinstance(entry, InvalidEntry) else in_flight_full())
        for entry in entries
        if entry is not None and not (isinstance(entry, Request) and entry.is_notification)
    ]


class CircleConsumer(AsyncWebsocketConsumer):
    """A connection to `/{circle_pk}` speaking JSON-RPC 2.0."""

    session: CircleSession | None = None
    slot = None  # this connection's place in the per-address count (circles.address_limits)
    closing = False
    draining = False  # set by `drain`: new requests are answered -32012

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Route a message to its handler, without Channels' per-message database clean-up.

        Channels closes stale database connections before every message (a hop to the
        database thread each time), which doubled the cost of a `whoami`. Every database call
        here goes through `database_sync_to_async`, which does that clean-up around itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message: WebSocketDisconnectEvent) -> None:
        """The connection closed: `disconnect`, then end the consumer, without Channels' clean-up hop.

        Channels ends every connection with `aclose_old_connections`, a hop to its database
        thread (a tenth of a sign-in's server CPU); for the same reason as in `dispatch` it is
        not needed here. This consumer joins no `groups` of the class kind (its own are left in
        `disconnect`).
        """
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def connect(self) -> None:
        """Accept, then close at once with 4429 if its address has too many connections open, or
        with 4404 if the circle is unknown (browsers can read the code and reason)."""
        raw_key = self.scope["url_route"]["kwargs"]["circle_pk"].removesuffix("/")
        self.log = ConnectionLog(logger, circle=raw_key[:80], peer=peer_of(self.scope))
        self.tasks: set[asyncio.Task] = set()
        self.in_flight = 0
        self.rate_rejections = 0
        self.invalid_frames = 0
        track(self)  # live connections: the open-connections gauge and the shutdown drain
        address = scope_address(self.scope)
        self.slot = connections.acquire(address, settings.CIRCLES_MAX_CONNECTIONS_PER_ADDRESS)
        if self.slot is None:
            assert address is not None  # `acquire` refuses only an address it could tell
            await self.accept()
            if refusals_logged.attempt(address, 1):
                self.log.info("refused: too many connections from %s (logged once a minute)", address)
            await self.shut(CLOSE_TOO_MANY, "too many connections")
            return
        try:
            await self.open_session(raw_key, address)
        except BaseException:
            self.slot.release()  # no disconnect follows a failed connect
            raise

    async def open_session(self, raw_key: str, address: str | None) -> None:
        """Look the circle up, accept, and start the session (or close 4404)."""
        circle = await find_active_circle(raw_key)
        await self.accept()
        if circle is None:
            self.log.info("refused: unknown or inactive circle")
            await self.shut(CLOSE_CIRCLE_NOT_FOUND, "circle not found")
            return
        limits = ConnectionLimits.from_settings()
        self.play_runner = play_runner_for(self.channel_name)
        self.session = CircleSession(
            circle=circle,
            peer=peer_of(self.scope),
            limits=limits,
            challenges=ChallengeBook(
                settings.CIRCLES_SERVER_NAME, circle.public_key, ttl=limits.nonce_ttl_seconds
            ),
            play_runner=self.play_runner,
            address=address,
            sign_ins=sign_in_limiter(),
            subscriptions=Subscriptions(
                max_subscriptions=limits.max_subscriptions,
                max_unread=limits.max_unread_notifications,
                send=self.send_notification,
                events=process_event_hub,
                overflow=self.too_many_unread,
            ),
        )
        refusal = await sign_in_at_connect(self.session, self.scope.get("query_string", b""))
        if refusal is not None:  # never log the query string: it holds the signature
            self.log.info("refused sign-in at connect: %s", refusal[2])
            await self.shut(refusal[0], refusal[1])
        elif self.session.authenticated:
            release_pass(self.scope)

    async def disconnect(self, code: int) -> None:
        """Cancel whatever this connection still has running, and give its address's place back."""
        untrack(self)
        if self.slot is not None:
            self.slot.release()
        for task in self.tasks:
            task.cancel()
        if self.session is not None:
            await self.session.subscriptions.close()

    async def send_notification(self, frame: str) -> None:
        """Send one notification frame (`Subscriptions.push`, for each subscriber of a change).

        Straight to the ASGI send: Channels' two `send` layers add nothing for a text frame
        and cost two coroutines per subscriber per change.
        """
        if not self.closing:
            await self.base_send(WebSocketSendEvent(type="websocket.send", text=frame, bytes=None))

    def too_many_unread(self) -> None:
        """The outbox overflowed: close 4408 (in a task: the event handler must not wait on the socket)."""
        self.log.info("closing: %s", TOO_MANY_UNREAD_REASON)
        task = asyncio.ensure_future(self.close_slow_reader())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close_slow_reader(self) -> None:
        """Close 4408; a client that takes not even the close frame in time is dropped.

        The close frame queues behind what the client left unread, and uvicorn's send waits
        while its write buffer is over the high-water mark: a peer that never reads would keep
        the connection (and this consumer) forever. Aborting the transport ends both.
        """
        try:
            await asyncio.wait_for(
                self.shut(CLOSE_TOO_MANY_UNREAD, TOO_MANY_UNREAD_REASON), SLOW_READER_CLOSE_SECONDS
            )
        except TimeoutError:
            transport = getattr(getattr(self.base_send, "__self__", None), "transport", None)
            if transport is not None and hasattr(transport, "abort"):  # uvicorn's protocols
                self.log.info("dropped: the client read nothing for %.0fs", SLOW_READER_CLOSE_SECONDS)
                transport.abort()

    async def script_result(self, event: dict[str, Any]) -> None:
        """A worker's outcome for one of this connection's `play` requests (channel-layer event)."""
        self.play_runner.deliver(event["run_id"], event["outcome"])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Check one frame against the limits, then read it (the Channels entry point of a frame)."""
        session = self.session
        if session is None or self.closing:
            return
        if text_data is None:
            await self.refuse_frame(binary_frame())
        elif frame_too_big(text_data, session.limits.max_message_bytes):
            self.log.info("closing: frame over %s bytes", session.limits.max_message_bytes)
            await self.shut(CLOSE_MESSAGE_TOO_BIG, "message too big")
            return
        else:
            await self.read_frame(text_data)
        await self.enforce_bounds()

    def live_session(self) -> CircleSession:
        """The session of a connection reading frames: `receive` reads none before it exists."""
        assert self.session is not None
        return self.session

    async def read_frame(self, text_data: str) -> None:
        """Parse a text frame, admit its entries, and reply or start the task that will."""
        limits = self.live_session().limits
        try:
            frame = parse_frame(text_data, max_batch=limits.max_batch)
        except RpcError as error:
            await self.refuse_frame(error)
            return
        invalid = next((entry.error for entry in frame.entries if isinstance(entry, InvalidEntry)), None)
        if invalid is not None:
            self.count_invalid_frame(invalid)
        entries = [self.admit(entry) for entry in frame.entries]
        if not frame.is_batch:
            await self.start_request(entries[0])
        elif self.in_flight + len(entries) > limits.max_in_flight:
            await self.reply(refuse_batch(entries))
        else:
            self.spawn(self.reply_to_batch(entries), len(entries))

    async def refuse_frame(self, error: RpcError) -> None:
        """Reply `error` to a frame holding no request at all (binary, not JSON, a bad batch): one token."""
        self.count_invalid_frame(error)
        admitted = self.admit(InvalidEntry(error))
        await self.reply(failure(None, admitted.error))

    def count_invalid_frame(self, error: RpcError) -> None:
        """Count an invalid frame; only the connection's first is logged (a flood is not)."""
        self.invalid_frames += 1
        if self.invalid_frames == 1:
            self.log.info(
                "invalid frame: %s %s (further ones on this connection are not logged)",
                error.code,
                error.data,
            )

    async def enforce_bounds(self) -> None:
        """After a frame: close 4429 after a run of rate rejections, 4400 at the invalid-frame bound."""
        limits = self.live_session().limits
        if self.closing:  # already closing (a failed sign-in too many): nothing more to say
            return
        if self.rate_rejections >= limits.rate_burst:
            self.log.info("closing: %s requests in a row over the rate", self.rate_rejections)
            await self.shut(CLOSE_TOO_MANY, "too many requests")
        elif 0 < limits.max_invalid_frames <= self.invalid_frames:
            self.log.info("closing: %s invalid frames", self.invalid_frames)
            await self.shut(CLOSE_INVALID_FRAMES, "too many invalid frames")

    @overload
    def admit(self, entry: InvalidEntry) -> InvalidEntry: ...
    @overload
    def admit(self, entry: Request | InvalidEntry) -> Request | InvalidEntry | None: ...
    def admit(self, entry: Request | InvalidEntry) -> Request | InvalidEntry | None:
        """Apply the request rate to one entry, valid or not: over it, -32029 (a notification is dropped)."""
        if self.draining:
            if isinstance(entry, Request):
                return None if entry.is_notification else InvalidEntry(shutting_down(), entry.id)
            return entry
        if self.live_session().rate.take():
            self.rate_rejections = 0  # only an unbroken run of rejections closes the socket
            return entry
        self.rate_rejections += 1
        if isinstance(entry, Request) and entry.is_notification:
            return None
        return InvalidEntry(over_the_rate(), entry.id)

    async def start_request(self, entry: Request | InvalidEntry | None) -> None:
        """A lone entry: reply in place to a cheap method or a refusal, else run it as a task (in bound)."""
        if isinstance(entry, Request) and not self.runs_inline(entry):
            if self.in_flight < self.live_session().limits.max_in_flight:
                self.spawn(self.reply_to(entry), 1)
            elif not entry.is_notification:
                await self.reply(failure(entry.id, in_flight_full()))
            return
        await self.reply_to(entry)

    @staticmethod
    def runs_inline(request: Request) -> bool:
        """Whether `request` names an `inline` method (cheap, no I/O): answered without a task."""
        method = registry.get(request.method)
        return method is not None and method.inline

    async def reply_to(self, entry: Request | InvalidEntry | None) -> None:
        """Reply to one entry (not in a batch) with its response object."""
        await self.reply(await self.response_to(entry))

    async def reply_to_batch(self, entries: list[Request | InvalidEntry | None]) -> None:
        """Answer every entry concurrently and reply once, with an array."""
        responses = await asyncio.gather(*(self.response_to(entry) for entry in entries))
        answered = [response for response in responses if response is not None]
        if answered:
            await self.reply(answered)

    async def response_to(self, entry: Request | InvalidEntry | None) -> dict[str, Any] | None:
        """The response to one entry (None: nothing to send); a request is run by `answer`."""
        if entry is None:
            return None
        if isinstance(entry, InvalidEntry):
            return failure(entry.id, entry.error)
        return await answer(registry, self.live_session(), entry, self.log)

    def spawn(self, coroutine: Coroutine[Any, Any, None], weight: int) -> None:
        """Run `coroutine` as a task of this connection, counting `weight` requests in flight."""
        task = asyncio.ensure_future(coroutine)
        self.in_flight += weight
        self.tasks.add(task)

        def finished(done: asyncio.Task) -> None:
            self.in_flight -= weight
            self.tasks.discard(done)

        task.add_done_callback(finished)

    async def reply(self, message: dict[str, Any] | list[dict[str, Any]] | None) -> None:
        """Send a response frame, then close with 4429 if sign-in attempts ran out."""
        if not message or self.closing:
            return
        if self.session is not None and self.session.authenticated:
            release_pass(self.scope)  # signed in: no longer among those admission control bounds
        await self.send(text_data=encode(message))
        if self.session is not None:
            self.session.subscriptions.answered(message)  # streams start once their answer is out
        if self.session is not None and self.session.failed_auth >= self.session.limits.max_failed_auth:
            self.log.warning("closing: %s failed authentications", self.session.failed_auth)
            await self.shut(CLOSE_TOO_MANY, "too many failed authentications")

    async def drain(self, grace: float) -> None:
        """Shutdown: refuse new requests, let in-flight ones finish within `grace` seconds, close 1001.

        A `play` still waiting when the grace ends is answered -32012; whatever is still
        running after that (nothing left to say) is cancelled.
        """
        self.draining = True
        pending = set(self.tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            if late:
                self.log.warning("shutdown: %d request(s) still running after %.1fs", len(late), grace)
                self.play_runner.give_up(shutting_down)  # tasks exist only once the session and its runner do
                _, late = await asyncio.wait(late, timeout=GIVEN_UP_SECONDS)
                for task in late:
                    task.cancel()
        await self.shut(CLOSE_GOING_AWAY, SHUTDOWN_REASON)

    async def shut(self, code: int, reason: str) -> None:
        """Close the socket once with `code` and a reason the client can read."""
        if not self.closing:
            self.closing = True
            await self.close(code=code, reason=reason)
