"""Logging filters for the ASGI server's own log lines."""

import logging

BAD_UTF8 = "Invalid UTF-8 sequence received from client."


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


def install() -> None:
    """Attach the filters to uvicorn's error logger (a no-op under other servers)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, BadUtf8WithoutTraceback) for f in logger.filters):
        logger.addFilter(BadUtf8WithoutTraceback())
