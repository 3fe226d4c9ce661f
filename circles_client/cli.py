"""`circles` / `python -m circles_client`: keygen, whoami, play, a repl, members, circle settings, jobs,
watch.

The circle URL comes from --url or $CIRCLES_URL (ws://, wss://, or the console page's
http(s):// address); the key from --key-file, --key, $CIRCLES_KEY or $CIRCLES_KEY_FILE.
Results are JSON on stdout, a script's logs go to stderr, failures are one line on stderr.
"""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

from circles_client.cli_input import UsageError, add_script_source, read_script
from circles_client.client import CircleClient
from circles_client.errors import CirclesError
from circles_client.job_cli import add_job_commands, job
from circles_client.keys import InvalidKey, SigningKey, load_key, write_key_file
from circles_client.output import (
    EXIT_OK,
    EXIT_USAGE,
    exit_code_for,
    one_line_error,
    print_json,
    print_logs,
)
from circles_client.watch_cli import add_watch_command, watch

URL_ENV = "CIRCLES_URL"
# The connection options may come before or after the command; their defaults are filled in after
# parsing (argparse's own defaults would let the subcommand's overwrite a value given before it).
DEFAULTS = {"url": None, "key_file": None, "key": None, "address": False, "timeout": 30.0}

EPILOG = """environment:
  CIRCLES_URL        the circle's URL, e.g. ws://127.0.0.1:8000/03ab... (or the console's http:// URL)
  CIRCLES_KEY        the private key in hex (prefer a key file)
  CIRCLES_KEY_FILE   a file holding the private key in hex (as `circles keygen -o FILE` writes it)

exit status: 0 ok, 1 the server answered with an error (a failed script or job among them),
2 usage or key problem, 3 connection lost, refused, circle not found or timed out,
130 interrupted (Ctrl+C: how `watch` and `job watch` usually end)."""


def connection_options() -> argparse.ArgumentParser:
    """Options every command that talks to a server takes (before or after the command name)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("-u", "--url", default=argparse.SUPPRESS, help=f"circle URL (default ${URL_ENV})")
    group.add_argument(
        "-f", "--key-file", default=argparse.SUPPRESS, help="file holding the private key (hex)"
    )
    group.add_argument(
        "-k", "--key", default=argparse.SUPPRESS, help="private key in hex (`ps` shows it: prefer -f or env)"
    )
    group.add_argument(
        "--address",
        action="store_true",
        default=argparse.SUPPRESS,
        help="sign in with the key's Ethereum address (as a wallet does) instead of its public key",
    )
    group.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="seconds to wait for each answer (30)"
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `circles` command."""
    common = connection_options()
    parser = argparse.ArgumentParser(
        prog="circles",
        description="Sign in to a Circles circle and run Rhai scripts.",
        parents=[common],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", help="make a new key; print it, or write it to a file (0600)")
    keygen.add_argument("-o", "--output", help="write the private key to this file instead of stdout")
    keygen.add_argument("--force", action="store_true", help="overwrite the output file")

    commands.add_parser("whoami", parents=[common], help="sign in (with a key) and show whoami")

    play = commands.add_parser("play", parents=[common], help="run a script: FILE, - (stdin) or -e SCRIPT")
    add_script_source(play)
    play.add_argument("--timeout-ms", type=int, help="the run's time limit (the server caps it)")
    play.add_argument("--full", action="store_true", help="print the whole result, not only its value")

    commands.add_parser("repl", parents=[common], help="interactive: type scripts, see results")
    add_membership_commands(commands, common)
    add_job_commands(commands, common)
    add_watch_command(commands, common)
    return parser


ROLES = ("admin", "member", "guest")


def add_membership_commands(commands, common: argparse.ArgumentParser) -> None:
    """`member list|add|role|remove` and `circle info|update`: scripts run with `play`."""
    member = commands.add_parser("member", parents=[common], help="list, add, re-role or remove members")
    actions = member.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="the owner, then every member with its role")
    add = actions.add_parser("add", parents=[common], help="add KEY (public key or address): owner or admin")
    add.add_argument("member", metavar="KEY", help="public key (hex) or Ethereum address")
    add.add_argument("--role", choices=ROLES, default="member", help="member (default), admin or guest")
    add.add_argument("--name", help="display name")
    role = actions.add_parser("role", parents=[common], help="change KEY's role to ROLE: owner or admin")
    role.add_argument("member", metavar="KEY")
    role.add_argument("role", choices=ROLES)
    remove = actions.add_parser("remove", parents=[common], help="remove KEY: owner or admin")
    remove.add_argument("member", metavar="KEY")

    circle = commands.add_parser("circle", parents=[common], help="show or change the circle's settings")
    actions = circle.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("info", parents=[common], help="name, description, allow_guests, member count")
    update = actions.add_parser(
        "update", parents=[common], help="change name, description, guests: owner only"
    )
    update.add_argument("--name")
    update.add_argument("--description")
    guests = update.add_mutually_exclusive_group()
    guests.add_argument("--allow-guests", dest="allow_guests", action="store_true", default=None)
    guests.add_argument("--no-allow-guests", dest="allow_guests", action="store_false")


def client_from(args: argparse.Namespace, environ: dict[str, str]) -> CircleClient:
    """The client the options and the environment describe."""
    url = args.url or environ.get(URL_ENV)
    if not url:
        raise UsageError(f"no circle URL: pass --url or set ${URL_ENV}")
    key = load_key(args.key, file=args.key_file, environ=environ)
    return CircleClient(url, key, by_address=args.address, request_timeout=args.timeout)


def keygen(args: argparse.Namespace) -> int:
    key = SigningKey.generate()
    shown: dict[str, Any] = {"pubkey": key.pubkey, "address": key.address}
    if args.output:
        try:
            shown["key_file"] = str(write_key_file(key, args.output, overwrite=args.force))
        except FileExistsError as exc:
            raise UsageError(f"{args.output} exists (use --force to overwrite it)") from exc
    else:
        shown["private_key"] = key.private_hex()
    print_json(shown)
    return EXIT_OK


async def whoami(client: CircleClient) -> int:
    async with client:
        print_json(await client.whoami())
    return EXIT_OK


async def play(client: CircleClient, script: str, *, timeout_ms: int | None, full: bool) -> int:
    async with client:
        result = await client.play(script, timeout_ms=timeout_ms)
    if full:
        print_json(result)
    else:
        print_logs(result.get("logs") or [])
        print_json(result.get("value"))
    return EXIT_OK


async def member(client: CircleClient, args: argparse.Namespace) -> int:
    async with client:
        if args.action == "list":
            print_json(await client.members())
        elif args.action == "add":
            print_json({"added": await client.add_member(args.member, args.role, args.name)})
        elif args.action == "role":
            print_json({"changed": await client.set_role(args.member, args.role)})
        else:
            print_json({"removed": await client.remove_member(args.member)})
    return EXIT_OK


async def circle(client: CircleClient, args: argparse.Namespace) -> int:
    async with client:
        if args.action == "info":
            print_json(await client.circle_info())
        else:
            settings = {"name": args.name, "description": args.description, "allow_guests": args.allow_guests}
            print_json(await client.update_circle(**settings))
    return EXIT_OK


def run(args: argparse.Namespace, environ: dict[str, str]) -> int:
    """Carry out the parsed command; errors propagate to `main`."""
    if args.command == "keygen":
        return keygen(args)
    nothing = (
        getattr(args, "name", None),
        getattr(args, "description", None),
        getattr(args, "allow_guests", None),
    )
    if args.command == "circle" and args.action == "update" and nothing == (None, None, None):
        raise UsageError("circle update: give --name, --description, --allow-guests or --no-allow-guests")
    client = client_from(args, environ)
    if args.command == "job":
        script = read_script(args) if hasattr(args, "file") else None  # job run and job create
        return asyncio.run(job(client, args, script))
    if args.command == "member":
        return asyncio.run(member(client, args))
    if args.command == "watch":
        return asyncio.run(watch(client, args))
    if args.command == "circle":
        return asyncio.run(circle(client, args))
    if args.command == "whoami":
        return asyncio.run(whoami(client))
    if args.command == "play":
        script = read_script(args)
        return asyncio.run(play(client, script, timeout_ms=args.timeout_ms, full=args.full))
    from circles_client.repl import run_repl

    return run_repl(client)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `circles` and `python -m circles_client`; returns the exit status."""
    args = build_parser().parse_args(argv)
    for name, default in DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        return run(args, dict(os.environ))
    except (UsageError, InvalidKey) as exc:
        print(f"circles: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CirclesError as exc:
        print(one_line_error(exc), file=sys.stderr)
        return exit_code_for(exc)
    except KeyboardInterrupt:
        return 130
