"""How the command line shows things: JSON pretty in a terminal and compact when piped."""

import json
import sys
from typing import Any, TextIO

from circles_client.errors import CirclesError, ConnectionLost, RequestTimeout

EXIT_OK = 0
EXIT_SERVER_ERROR = 1  # the server answered with an error (a failed script among them)
EXIT_USAGE = 2  # bad arguments, no URL, an unreadable key (argparse uses 2 as well)
EXIT_CONNECTION = 3  # could not connect, the connection was lost or closed, or no answer in time


def format_json(value: Any, *, pretty: bool) -> str:
    """`value` as JSON text: indented for people, one compact line for programs."""
    if pretty:
        return json.dumps(value, indent=2, ensure_ascii=False)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def print_json(value: Any, stream: TextIO | None = None) -> None:
    """Print `value` as JSON, pretty when `stream` is a terminal."""
    stream = stream or sys.stdout
    print(format_json(value, pretty=stream.isatty()), file=stream, flush=True)


def print_logs(logs: list[str], stream: TextIO | None = None) -> None:
    """A script's log lines (`print`, `debug`) go to stderr, so stdout stays pure JSON."""
    stream = stream or sys.stderr
    for line in logs:
        print(line, file=stream, flush=True)


def one_line_error(error: BaseException) -> str:
    """`error: Kind: what happened`, on one line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"error: {type(error).__name__}: {text}"


def exit_code_for(error: CirclesError) -> int:
    """The exit status for a client error: connection trouble or the server's answer (EXIT_*)."""
    return EXIT_CONNECTION if isinstance(error, ConnectionLost | RequestTimeout) else EXIT_SERVER_ERROR
