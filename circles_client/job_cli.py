"""`circles job run|create|start|status|get|output|logs|stop|delete|list|clear|watch`.

`run` creates a job, subscribes to it, starts it and waits: the elapsed time, the status and
the job's log lines go to stderr as they come (`circles_client.job_progress`), the output to
stdout; a job that ends `error` (stopped among them) is one line on stderr and exit status 1.
Ctrl+C during `run` stops the job. `watch` prints every notification as a JSON line.
"""

import argparse
import asyncio
import contextlib
import sys
from typing import Any, TextIO

from circles_client.cli_input import UsageError, add_script_source
from circles_client.client import CircleClient
from circles_client.errors import CirclesError
from circles_client.job_progress import Progress
from circles_client.jobs import TOPIC, Job, failure
from circles_client.output import EXIT_OK, EXIT_SERVER_ERROR, format_json, one_line_error, print_json

STATUSES = ("created", "dispatched", "started", "finished", "error")


def add_job_commands(commands, common: argparse.ArgumentParser) -> None:
    """The `job` command and its actions."""
    job = commands.add_parser("job", parents=[common], help="long-running scripts: run, create, watch, stop…")
    actions = job.add_subparsers(dest="action", required=True, metavar="ACTION")

    run = actions.add_parser(
        "run",
        parents=[common],
        help="create, start and wait; logs and elapsed time on stderr, output on stdout",
    )
    create = actions.add_parser("create", parents=[common], help="create a job (not started); prints its id")
    for parser in (run, create):
        add_script_source(parser)
        parser.add_argument(
            "--time-limit", type=int, metavar="SECONDS", help="the job's timeout (server caps it)"
        )
        parser.add_argument(
            "--env",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="an entry of ENV_VARS (repeatable)",
        )
        parser.add_argument(
            "--after", action="append", default=[], metavar="JOB_ID", help="a prerequisite job (repeatable)"
        )
    run.add_argument("--json", action="store_true", help="print the final job object as JSON, not its output")

    for action, text in (
        ("start", "start a created job"),
        ("status", "print its status"),
        ("get", "print the whole job object"),
        ("output", "print the output of a finished job"),
        ("logs", "print what it printed so far"),
        ("stop", "stop it (it ends error, kind stopped)"),
        ("delete", "delete it (not while it runs)"),
    ):
        actions.add_parser(action, parents=[common], help=text).add_argument("job_id", metavar="JOB_ID")

    listing = actions.add_parser("list", parents=[common], help="your jobs, newest first, as JSON")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, help="at most this many (server default 50, cap 200)")
    listing.add_argument("--before", metavar="JOB_ID", help="the page after this job")
    listing.add_argument("--all", action="store_true", help="every caller's jobs: owner or admin")

    actions.add_parser("clear", parents=[common], help="delete your jobs that are not running")

    watch = actions.add_parser(
        "watch", parents=[common], help="print notifications as JSON lines as they come"
    )
    watch.add_argument(
        "job_id", nargs="?", metavar="JOB_ID", help="one job, until it ends (default: all yours)"
    )
    watch.add_argument("--all", action="store_true", help="every job of the circle: owner or admin")


def env_vars(pairs: list[str]) -> dict[str, str] | None:
    """`NAME=VALUE` options as a map (None when there are none)."""
    if not pairs:
        return None
    names: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise UsageError(f"--env {pair!r}: expected NAME=VALUE")
        names[name] = value
    return names


async def job(client: CircleClient, args: argparse.Namespace, script: str | None) -> int:
    """Carry out `circles job ACTION`; errors propagate to `main`."""
    variables = env_vars(getattr(args, "env", []))  # a usage error before connecting
    async with client:
        if args.action == "run":
            return await run(client, args, script or "", variables, sys.stderr)
        if args.action == "create":
            created = await client.create_job(script or "", args.time_limit, variables, args.after or None)
            print(created.id, flush=True)
        elif args.action == "watch":
            await watch(client, args)
        elif args.action == "list":
            print_json(await client.list_jobs(args.status, args.limit, args.before, all_jobs=args.all))
        elif args.action == "clear":
            print_json({"deleted": await client.clear_all_jobs()})
        else:
            await one_job(client.job(args.job_id), args.action)
    return EXIT_OK


async def one_job(handle: Job, action: str) -> None:
    """start, status, get, output, logs, stop, delete: plain text for the texts, JSON for the rest."""
    if action == "status":
        print(await handle.status(), flush=True)
    elif action == "output":
        print(await handle.output(), flush=True)
    elif action == "logs":
        logs = await handle.logs()
        if logs:
            print(logs, flush=True)
    elif action == "get":
        print_json(await handle.get())
    else:
        await getattr(handle, action)()  # start, stop, delete
        print_json({"success": True})


async def run(
    client: CircleClient,
    args: argparse.Namespace,
    script: str,
    variables: dict[str, str] | None,
    stderr: TextIO,
) -> int:
    """`job run`: follow the job from before it starts to its final state."""
    handle = await client.create_job(script, args.time_limit, variables, args.after or None)
    progress = Progress(handle.id, stderr)
    ticking = asyncio.create_task(progress.tick())
    try:
        async for state in handle.follow(start=True):
            if state.get("logs"):
                progress.show_logs(state["logs"])
            progress.show_status(state["status"])
        progress.show_missing_logs(await handle.logs())
    except asyncio.CancelledError:  # Ctrl+C: do not leave it running
        with contextlib.suppress(CirclesError, asyncio.CancelledError):
            await asyncio.wait_for(handle.stop(), 5)
        raise
    finally:
        ticking.cancel()
    final = await handle.get()
    progress.finish(final["status"], final.get("elapsed_ms"))
    if args.json:
        print_json(final)
    elif final["status"] == "finished":
        print(final.get("output"), flush=True)
    if final["status"] != "finished":
        print(one_line_error(failure(final)), file=stderr, flush=True)
        return EXIT_SERVER_ERROR
    return EXIT_OK


async def watch(client: CircleClient, args: argparse.Namespace) -> None:
    """`job watch`: one job until its final state, or a subscription until Ctrl+C."""
    if args.job_id:
        async for state in client.job(args.job_id).follow():
            print_line(state)
        return
    params: dict[str, Any] = {"all": True} if args.all else {}
    async with await client.subscribe(TOPIC, **params) as subscription:
        async for result in subscription:
            print_line(result)


def print_line(value: Any) -> None:
    """One notification: one compact JSON line, flushed (for `jq` or a log)."""
    print(format_json(value, pretty=False), flush=True)
