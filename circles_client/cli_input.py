"""What the command line reads besides its options: the script to run, and its usage errors."""

import argparse
import sys


class UsageError(Exception):
    """A problem with the command line or the environment (exit status 2)."""


def add_script_source(parser: argparse.ArgumentParser) -> None:
    """FILE, - (stdin) or -e SCRIPT: exactly one."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", help="script file, or - for stdin")
    source.add_argument("-e", "--eval", dest="script", help="the script itself")


def read_script(args: argparse.Namespace) -> str:
    """The script `add_script_source`'s options name."""
    if args.script is not None:
        return args.script
    if args.file == "-":
        return sys.stdin.read()
    try:
        with open(args.file, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
