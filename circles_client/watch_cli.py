"""`circles watch COLLECTION [--prefix P] [--since N] [--count N]`: a collection's changes, live.

Each committed change is one compact JSON line on stdout, flushed as it comes (for `jq` or a
log); one line on stderr says from which seq it watches once the server has accepted the
subscription. It runs until Ctrl+C (exit status 130, as every command), end of input typed in a
terminal (Ctrl+D: 0), `--count` changes (0), or stdout closing (`| head`: 0). A lost connection
is reconnected in the background and the watch resumes after the last change printed, so none
is printed twice or missed. A `since` the server no longer keeps exits 1 with a hint.
"""

import argparse
import asyncio
import contextlib
import os
import sys
from typing import TextIO

from circles_client.circle_scripts import rhai_string
from circles_client.client import CircleClient
from circles_client.errors import ChangesCompacted
from circles_client.output import EXIT_OK, format_json

WATCH_EPILOG = """each line: {"seq", "collection", "key", "op" ("put" or "delete"), "version", "data",
"updated_by", "updated_at", "source"}; seq numbers the circle's changes (the lines skip those of
other collections and keys). A dropped connection is reconnected and the watch resumes after the
last line printed: none twice, none missed.

ends: Ctrl+C (status 130), Ctrl+D in a terminal or --count changes (0), the reader of stdout
going away (0); 1 the server refused (not signed in, forbidden, --since beyond the latest change,
or older than the changes it keeps: re-read with db::list and watch again with --since HEAD),
3 the connection is gone for good (circle not found)."""


def seq_number(text: str) -> int:
    """An argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (got {value})")
    return value


def positive(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def add_watch_command(commands, common: argparse.ArgumentParser) -> None:
    """The `watch` command."""
    watch = commands.add_parser(
        "watch",
        parents=[common],
        help="print a collection's changes as JSON lines as they are committed (Ctrl+C ends)",
        description="Print every committed change of COLLECTION as one JSON line, live, until Ctrl+C.",
        epilog=WATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    watch.add_argument("collection", metavar="COLLECTION", help="the db:: collection to watch")
    watch.add_argument("--prefix", metavar="P", help="only the keys that start with P")
    watch.add_argument(
        "--since",
        type=seq_number,
        metavar="N",
        help="first every change the server still keeps after seq N (default: from now on)",
    )
    watch.add_argument("--count", type=positive, metavar="N", help="exit after N changes")


async def watch(
    client: CircleClient, args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Carry out `circles watch`; errors propagate to `main`."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    async with client:
        printing = asyncio.create_task(print_changes(client, args, stdout, stderr))
        ended = asyncio.create_task(end_of_terminal_input(sys.stdin))
        try:
            done, _ = await asyncio.wait({printing, ended}, return_when=asyncio.FIRST_COMPLETED)
            if printing in done:
                return printing.result()  # or its error, for `main` to report
            return EXIT_OK  # Ctrl+D
        finally:
            for task in (printing, ended):
                task.cancel()
            for task in (printing, ended):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


async def print_changes(
    client: CircleClient, args: argparse.Namespace, stdout: TextIO, stderr: TextIO
) -> int:
    """One JSON line per change until `--count` or stdout closes."""
    printed = 0
    try:
        async with client.watch(args.collection, args.prefix, args.since) as changes:
            what = args.collection + (f" (keys {args.prefix}…)" if args.prefix else "")
            print(f"watching {what} after seq {changes.last_seq}", file=stderr, flush=True)
            async for change in changes:
                try:
                    print(format_json(change, pretty=False), file=stdout, flush=True)
                except BrokenPipeError:
                    # The reader went away (`| head`): stop quietly, and let the interpreter's
                    # last flush of stdout find nowhere to fail.
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    with contextlib.suppress(OSError, ValueError):
                        os.dup2(devnull, stdout.fileno())
                    return EXIT_OK
                printed += 1
                if args.count is not None and printed >= args.count:
                    return EXIT_OK
    except ChangesCompacted as exc:
        relist = f"db::list({rhai_string(args.collection)}, 1000)"
        print(
            f"hint: the server keeps changes from seq {exc.oldest} on; re-read the collection"
            f" (circles play -e '{relist}') and watch again with --since {exc.head}",
            file=stderr,
            flush=True,
        )
        raise
    return EXIT_OK  # unsubscribed


async def end_of_terminal_input(stdin: TextIO) -> None:
    """Returns when input typed in a terminal ends (Ctrl+D); never for other input (a pipe, /dev/null)."""
    try:
        interactive = stdin.isatty()
        fd = stdin.fileno()
    except (AttributeError, ValueError, OSError):
        interactive = False
    if not interactive:
        await asyncio.Event().wait()
    loop = asyncio.get_running_loop()
    ended = loop.create_future()

    def readable() -> None:
        if not os.read(fd, 4096) and not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ended
    finally:
        loop.remove_reader(fd)
