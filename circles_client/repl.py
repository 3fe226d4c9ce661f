"""`circles repl`: type Rhai, see the result; readline history and multi-line entries.

An entry goes on while a brace, bracket or parenthesis is open, inside a back-tick string
or a block comment, or when a line ends with a backslash. Each entry is one `play` run:
variables do not survive from one entry to the next (records written with `db::` do).
"""

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from circles_client.client import CircleClient
from circles_client.errors import CircleNotFound, CirclesError
from circles_client.output import EXIT_CONNECTION, one_line_error, print_json, print_logs

T = TypeVar("T")

HISTORY_ENV = "CIRCLES_HISTORY"
HELP = """Type a Rhai script; it runs in the circle when it is complete (Ctrl+C drops the entry).
An entry continues while braces/brackets are open, or after a line ending in a backslash.
  .whoami   who this connection is signed in as
  .help     this text
  .quit     leave (Ctrl+D too)"""


def needs_more(source: str) -> bool:
    """Whether `source` is unfinished: open brackets, an open back-tick string or block comment."""
    depth = 0
    comment_depth = 0  # Rhai block comments nest
    quote: str | None = None
    i, n = 0, len(source)
    while i < n:
        char, pair = source[i], source[i : i + 2]
        if comment_depth:
            if pair in ("*/", "/*"):
                comment_depth += 1 if pair == "/*" else -1
                i += 2
            else:
                i += 1
        elif quote:
            if char == "\\" and quote != "`":
                i += 2
                continue
            if char == quote:
                quote = None
            i += 1
        elif pair == "//":
            newline = source.find("\n", i)
            i = n if newline < 0 else newline
        elif pair == "/*":
            comment_depth = 1
            i += 2
        else:
            if char in "\"'`":
                quote = char
            elif char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            i += 1
    return depth > 0 or quote == "`" or comment_depth > 0


def join_line(buffer: list[str], line: str) -> bool:
    """Add `line` to the entry in `buffer`; True when the entry is complete."""
    continued = line.endswith("\\")
    buffer.append(line[:-1] if continued else line)
    return not continued and not needs_more("\n".join(buffer))


class LoopThread:
    """An event loop in a daemon thread, so the socket keeps answering pings while we wait for input."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="circles-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait; Ctrl+C cancels it."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def setup_history() -> Path | None:
    """Load readline history (`$CIRCLES_HISTORY`, default ~/.circles_history); None without readline."""
    try:
        import readline
    except ImportError:
        return None
    path = Path(os.environ.get(HISTORY_ENV) or Path.home() / ".circles_history").expanduser()
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)
    return path


def save_history(path: Path | None) -> None:
    if path is None:
        return
    import readline

    with contextlib.suppress(OSError):
        readline.write_history_file(path)


def run_repl(client: CircleClient) -> int:
    """The read-eval-print loop; returns the exit status.

    0, or 3 if the circle went away; when the input is not a terminal, 1 if any entry failed.
    """
    interactive = sys.stdin.isatty()
    history = setup_history() if interactive else None
    loop = LoopThread()
    try:
        loop.run(client.open())
        me = loop.run(client.whoami())
        if interactive:
            who = me["pubkey"] or "nobody (no key: signed out)"
            print(f"circle {me['circle']}", file=sys.stderr)
            print(f"signed in as {who}, role {me['role']}; .help for help", file=sys.stderr)
        reconnects = client.reconnects
        failed = False
        buffer: list[str] = []
        while True:
            prompt = ("... " if buffer else "circles> ") if interactive else ""
            try:
                line = input(prompt)
            except EOFError:
                if interactive:
                    print(file=sys.stderr)
                break
            except KeyboardInterrupt:
                print("^C", file=sys.stderr)
                buffer.clear()
                continue
            if not buffer and line.strip() in (".quit", ".exit"):
                break
            if not buffer and line.strip() == ".help":
                print(HELP, file=sys.stderr)
                continue
            if not buffer and not line.strip():
                continue
            if not join_line(buffer, line):
                continue
            source, buffer = "\n".join(buffer), []
            try:
                if source.strip() == ".whoami":
                    print_json(loop.run(client.whoami()))
                else:
                    result = loop.run(client.play(source))
                    print_logs(result.get("logs") or [])
                    print_json(result.get("value"))
            except KeyboardInterrupt:
                print("^C (the run may still finish on the server)", file=sys.stderr)
            except CircleNotFound as exc:
                print(one_line_error(exc), file=sys.stderr)
                return EXIT_CONNECTION
            except CirclesError as exc:
                failed = True
                print(one_line_error(exc), file=sys.stderr)
            if client.reconnects != reconnects:
                reconnects = client.reconnects
                print("(reconnected and signed in again)", file=sys.stderr)
        return 1 if failed and not interactive else 0
    finally:
        with contextlib.suppress(Exception):
            loop.run(client.close())
        loop.stop()
        save_history(history)
