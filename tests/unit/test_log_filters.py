"""Log filters: a bad-UTF-8 frame and a Redis outage each become one short line, not a traceback flood."""

import logging
import sys

import redis

from circleproject.log_filters import BAD_UTF8, BadUtf8WithoutTraceback, RedisOutageWithoutTraceback


def record_with(exc: BaseException, msg: str, *, created: float = 0.0) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, msg, None, sys.exc_info())
    record.created = created
    return record


def test_uvicorns_bad_utf8_error_becomes_one_info_line() -> None:
    record = record_with(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), BAD_UTF8)
    assert BadUtf8WithoutTraceback().filter(record)
    assert record.levelno == logging.INFO and record.exc_info is None
    assert logging.Formatter().format(record) == f"{BAD_UTF8} Closed 1007."


def test_other_uvicorn_errors_keep_their_traceback() -> None:
    record = record_with(RuntimeError("boom"), "Exception in ASGI application\n")
    assert BadUtf8WithoutTraceback().filter(record)
    assert record.levelno == logging.ERROR and "Traceback" in logging.Formatter().format(record)


def test_a_redis_outage_is_one_warning_per_interval() -> None:
    outage = RedisOutageWithoutTraceback(every_seconds=30)
    lines = []
    for second in range(65):
        record = record_with(
            redis.ConnectionError("Connection refused"), "Unexpected exception", created=second
        )
        if outage.filter(record):
            lines.append(logging.Formatter().format(record))
    assert len(lines) == 3  # at 0, 30 and 60 s
    assert lines[0] == "pub/sub receive: Redis unreachable (Connection refused); retrying every second"


def test_other_receive_task_errors_keep_their_traceback() -> None:
    record = record_with(KeyError("channel"), "Unexpected exception in receive task")
    assert RedisOutageWithoutTraceback().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_query_strings_are_cut_from_path_arguments() -> None:
    from circleproject.log_filters import WebSocketQueryStringRemoved

    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        "",
        0,
        '%s - "WebSocket %s" [accepted]',
        ("1.2.3.4:5", "/02ab?sig=ff"),
        None,
    )
    assert WebSocketQueryStringRemoved().filter(record)
    assert record.getMessage() == '1.2.3.4:5 - "WebSocket /02ab" [accepted]'
    debug = logging.LogRecord("uvicorn.error", logging.DEBUG, "", 0, "< GET %s HTTP/1.1", ("/x?a=1",), None)
    WebSocketQueryStringRemoved().filter(debug)
    assert debug.getMessage() == "< GET /x HTTP/1.1"
    plain = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "what? %s", ("no path?",), None)
    WebSocketQueryStringRemoved().filter(plain)
    assert plain.getMessage() == "what? no path?"
