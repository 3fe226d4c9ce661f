"""Logging filters for the ASGI server's own log lines."""

import logging
from typing import TypeGuard

import redis

BAD_UTF8 = "Invalid UTF-8 sequence received from client."
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError)


class BadUtf8WithoutTraceback(logging.Filter):
    """uvicorn logs every non-UTF-8 text frame as an ERROR with a full traceback, then closes 1007.

    Any client can send such frames, so that is a log flood for the price of a connection.
    The close is the documented answer (docs/PROTOCOL.md); the line becomes one INFO line
    without the traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite uvicorn's bad-UTF-8 record in place; let everything else through unchanged."""
        if record.msg == BAD_UTF8 and record.exc_info:
            record.msg = f"{BAD_UTF8} Closed 1007."
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class RedisOutageWithoutTraceback(logging.Filter):
    """channels-redis' pub/sub receive task logs a full traceback every second while Redis is away.

    A lost connection is expected there (it reconnects by itself, executor/layer.py): the
    traceback becomes one WARNING line, at most once per `every_seconds`. Any other exception
    is left as it is.
    """

    def __init__(self, every_seconds: float = 30.0) -> None:
        super().__init__()
        self.every_seconds = every_seconds
        self.last_shown = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        """Shorten (or drop, within the interval) a lost-Redis record; pass everything else."""
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, REDIS_DOWN):
            return True
        if record.created - self.last_shown < self.every_seconds:
            return False
        self.last_shown = record.created
        record.msg, record.args = "pub/sub receive: Redis unreachable (%s); retrying every second", (exc,)
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class DisallowedHostWithoutTraceback(logging.Filter):
    """Django logs every request with a Host outside ALLOWED_HOSTS as an ERROR with a full traceback.

    Anyone can send such a request (scanners do, all day); the 400 is the answer. The record
    becomes one WARNING line without the traceback, its text cut to `max_chars` (the Host is
    the client's).
    """

    def __init__(self, max_chars: int = 300) -> None:
        super().__init__()
        self.max_chars = max_chars

    def filter(self, record: logging.LogRecord) -> bool:
        """Shorten the DisallowedHost record in place; let everything else through unchanged."""
        if record.exc_info or record.levelno > logging.WARNING:
            record.msg, record.args = record.getMessage()[: self.max_chars], None
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class WebSocketQueryStringRemoved(logging.Filter):
    """uvicorn logs every WebSocket handshake as `"WebSocket /path?query" [accepted]` (INFO), and
    at DEBUG the websockets library logs the request line `< GET /path?query HTTP/1.1` through it.

    A sign-in in the URL (`?pubkey=&sig=&nonce=`, docs/PROTOCOL.md section 4.5) carries the
    signature there, so the query string is cut from every path argument of these records.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop the `?…` of every path-like (`/…`) argument of the record; pass it on."""
        if isinstance(record.args, tuple) and any(_is_path_with_query(arg) for arg in record.args):
            record.args = tuple(
                arg.split("?", 1)[0] if _is_path_with_query(arg) else arg for arg in record.args
            )
        return True


def _is_path_with_query(arg: object) -> TypeGuard[str]:
    return isinstance(arg, str) and arg.startswith("/") and "?" in arg


def install() -> None:
    """Attach the filters to the loggers they fix (idempotent; a no-op where nothing logs there)."""
    for name, kind in (
        ("uvicorn.error", BadUtf8WithoutTraceback),
        ("uvicorn.error", WebSocketQueryStringRemoved),
        ("websockets.server", WebSocketQueryStringRemoved),
        ("uvicorn.access", WebSocketQueryStringRemoved),
        ("channels_redis.pubsub", RedisOutageWithoutTraceback),
        ("django.security.DisallowedHost", DisallowedHostWithoutTraceback),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, kind) for existing in logger.filters):
            logger.addFilter(kind())
