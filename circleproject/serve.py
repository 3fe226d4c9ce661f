"""Production entry point: `python -m circleproject.serve --host H --port P [--workers N] [--uds PATH]`.

Runs uvicorn programmatically with the project's ASGI app and the settings production needs:
no lifespan (Django has none), a WebSocket frame limit just above `CIRCLES_MAX_MESSAGE_BYTES`
(so the consumer's own 1009 close decides, with its reason, rather than the protocol layer),
`X-Forwarded-*` honoured only from `CIRCLES_TRUSTED_PROXIES`, no access log unless asked, a
request-head timeout (`circleproject.header_timeout`, `CIRCLES_HTTP_HEADER_TIMEOUT_SECONDS`), an
HTTP protocol that leaves no reference cycle behind a WebSocket upgrade (`circleproject.http_protocol`),
and uvicorn's loggers at `LOG_LEVEL` unless `CIRCLES_UVICORN_LOG_LEVEL` says otherwise.

`CirclesServer` drains every WebSocket before uvicorn's own shutdown (which would close them
with 1012 at once): `circles.shutdown` answers in-flight requests, then closes with 1001.
With `--workers N` (N > 1) a small supervisor binds the socket once and runs N server
processes on it; SIGTERM to the supervisor is forwarded to each, which drains the same way, and
the supervisor closes its own copy of the socket: while they drain, new connections are refused
(not queued where nothing accepts them, to be reset when the supervisor exits).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
from uvicorn.logging import TRACE_LOG_LEVEL

from circleproject.gc_tuning import tune_gc
from circleproject.http_protocol import CirclesHttpProtocol

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "circleproject.settings")

logger = logging.getLogger("circleproject.serve")

# Room for the WebSocket frame header and a little slack over our own limit: a frame of exactly
# CIRCLES_MAX_MESSAGE_BYTES + 1 must reach the consumer, which closes 1009 with its reason.
WS_SIZE_SLACK = 16 * 1024


class CirclesServer(uvicorn.Server):
    """uvicorn's server, draining the circle WebSockets (answers, then 1001) before its own shutdown."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop listening, drain every live `CircleConsumer`, then let uvicorn finish."""
        from circles.shutdown import drain_all

        for server in self.servers:
            server.close()  # stop accepting first (uvicorn closes them again, harmlessly)
        for sock in sockets or []:
            sock.close()
        await drain_all()
        await super().shutdown(sockets)


def log_level(name: str) -> int:
    """A level name (`warning`, `WARNING`, `warn`, `trace`, ...) as the number uvicorn's Config takes."""
    if name.lower() == "trace":
        return TRACE_LOG_LEVEL
    level = logging.getLevelNamesMapping().get(name.upper())
    if level is None:
        raise argparse.ArgumentTypeError(f"unknown log level {name!r}")
    return level


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, with defaults from `CIRCLES_HOST`, `CIRCLES_PORT` and `CIRCLES_WORKERS`."""
    parser = argparse.ArgumentParser(prog="python -m circleproject.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("CIRCLES_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CIRCLES_PORT", "8000")))
    parser.add_argument("--uds", default=os.environ.get("CIRCLES_UDS") or None, help="a Unix socket path")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("CIRCLES_WORKERS", "1")))
    parser.add_argument(
        "--access-log",
        action="store_true",
        default=os.environ.get("CIRCLES_ACCESS_LOG", "") in ("1", "true", "yes"),
        help="log every HTTP request (off by default)",
    )
    parser.add_argument(
        "--log-level",
        type=log_level,
        default=os.environ.get("CIRCLES_UVICORN_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "info",
        help="uvicorn's log level (default: CIRCLES_UVICORN_LOG_LEVEL, else LOG_LEVEL, else info)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def build_config(args: argparse.Namespace) -> uvicorn.Config:
    """The uvicorn configuration for `args`, read against the Django settings."""
    from django.conf import settings

    trusted = [entry.strip() for entry in settings.CIRCLES_TRUSTED_PROXIES if entry.strip()]
    return uvicorn.Config(
        "circleproject.asgi:application",
        host=args.host,
        port=args.port,
        uds=args.uds,
        lifespan="off",
        http=CirclesHttpProtocol,
        ws_max_size=settings.CIRCLES_MAX_MESSAGE_BYTES + WS_SIZE_SLACK,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        access_log=args.access_log,
        log_level=args.log_level,
        server_header=False,
        workers=args.workers,
    )


def _ignore(signum: int, frame: Any) -> None:
    """A no-op handler: uvicorn re-raises the signal it stopped on; we have already handled it."""


def run_single(config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> int:
    """Serve in this process until SIGTERM/SIGINT, drain, and return the exit code (0: clean)."""
    # uvicorn re-raises the captured signal after a graceful shutdown, which would end the
    # process "killed by SIGTERM"; with these no-op handlers restored instead, it exits 0.
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    tune_gc()  # here: each supervised child is a process of its own
    server = CirclesServer(config)
    server.run(sockets=sockets)
    if config.uds and sockets is None and os.path.exists(config.uds):
        os.remove(config.uds)
    return 0 if server.started else 3


def _child(config: uvicorn.Config, sockets: list[socket.socket]) -> None:
    sys.exit(run_single(config, sockets))


def run_supervised(config: uvicorn.Config, workers: int) -> int:
    """Run `workers` server processes on one bound socket; forward SIGTERM/SIGINT; 0 if all exit 0."""
    from uvicorn._subprocess import get_subprocess

    sock = config.bind_socket()
    target = functools.partial(_child, config)
    children = [get_subprocess(config, target=target, sockets=[sock]) for _ in range(workers)]
    stopping = False

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for child in children:
            if child.is_alive() and child.pid:
                os.kill(child.pid, signal.SIGTERM)
        # Each draining process closes its own copy of the listening socket; this one must go
        # too, or the kernel keeps queueing connections that nobody will accept and resets them
        # all when the supervisor exits. Closed, new clients are refused at once and retry.
        sock.close()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.start()
    logger.info("started %d server processes: %s", workers, [child.pid for child in children])
    try:
        # A child that dies on its own ends the group: the service manager restarts the unit.
        while not stopping and all(child.is_alive() for child in children):
            children[0].join(0.5)
        forward(signal.SIGTERM, None)
        for child in children:
            child.join()
    finally:
        sock.close()
        if config.uds and os.path.exists(config.uds):
            os.remove(config.uds)
    codes = [child.exitcode for child in children]
    logger.info("server processes exited: %s", codes)
    return 0 if all(code == 0 for code in codes) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and serve; returns the process exit code."""
    args = parse_args(argv)
    import django

    django.setup()
    config = build_config(args)
    if args.workers > 1:
        logging.basicConfig(level=args.log_level)
        return run_supervised(config, args.workers)
    return run_single(config)


if __name__ == "__main__":
    sys.exit(main())
