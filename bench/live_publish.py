"""The publishers of `bench.live`'s rate phase: ours (real change rows, real publish) and Channels'.

Run by `bench.live` as a child process, commanded on stdin, one line per command:

* `N`: make N changes (`--per-commit` per transaction), then print `ok <total so far>`;
* `quit`: exit.

It prints `ready` once set up (Django imported, the circle found).

Modes:

* `ours` (env: the server's, so DATABASE_URL, REDIS_URL and CIRCLES_QUEUE_STREAM are ours'):
  each transaction (`--per-commit` changes: a run that writes that many records; on SQLite the
  publisher's own connection does not wait for the disk, `PRAGMA synchronous=OFF`, as a commit
  waiting for a shared disk would make the publisher, not the server, the limit) numbers
  its `PendingChange`s with the circle's counter and inserts their `RecordChange` rows
  (`executor.change_commit.commit_changes`, the path of every script's write), and publishes
  them after the commit (`executor.change_feed.publish`: one PUBLISH per change on the circle's
  channel, pipelined). Only the script run is skipped: the server's hub gets real rows with
  gap-free numbers, exactly as from a `play`, so it never has to fill a gap from the log.
* `channels` (env BENCH_REDIS_URL): `group_send(group, {"type": "record.change", "change": ...})`
  per change on `channels_redis.core.RedisChannelLayer`, the consumers of `bench.live_channels`
  forwarding each to their socket. The change object has the same shape and size as ours.

    python -m bench.live_publish ours --circle-key HEX
    python -m bench.live_publish channels --circle-key HEX
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from typing import Any

COLLECTION = "bench"
SOURCE = "ws"


def reply(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def commands():
    """The stdin commands: each a count of changes to make; ends at `quit` or end of input."""
    for line in sys.stdin:
        line = line.strip()
        if line == "quit":
            return
        if line:
            yield int(line)


def run_ours(circle_key: str, updated_by: str, per_commit: int) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "circleproject.settings")
    django.setup()
    from django.db import connection, transaction

    from circles.changes import PendingChange
    from circles.models import Circle
    from executor.change_commit import commit_changes

    circle_id = Circle.objects.get(public_key=circle_key).pk
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:  # this connection's commits only: no wait for the disk
            cursor.execute("PRAGMA synchronous=OFF")
    reply("ready")
    total = 0
    for count in commands():
        while count > 0:
            batch = []
            for _ in range(min(count, per_commit)):
                total += 1
                batch.append(
                    PendingChange(
                        collection=COLLECTION,
                        key=f"p{total}",
                        op="put",
                        version=1,
                        data={"i": total},
                        updated_by=updated_by,
                        source=SOURCE,
                    )
                )
            with transaction.atomic():
                commit_changes(circle_id, batch)
            count -= len(batch)
        reply(f"ok {total}")


def channels_change(seq: int, updated_by: str) -> dict[str, Any]:
    """A change object as ours publishes it (same fields, same size)."""
    now = datetime.now(UTC)
    return {
        "seq": seq,
        "collection": COLLECTION,
        "key": f"p{seq}",
        "op": "put",
        "version": 1,
        "data": {"i": seq},
        "updated_by": updated_by,
        "updated_at": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "source": SOURCE,
    }


async def run_channels(circle_key: str, updated_by: str) -> None:
    from channels.layers import get_channel_layer

    from bench.live_channels import CHANGE_EVENT, group_name

    layer = get_channel_layer()
    group = group_name(circle_key)
    loop = asyncio.get_running_loop()
    reply("ready")
    total = 0
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line == "quit" or not line:
            return
        for _ in range(int(line)):
            total += 1
            await layer.group_send(
                group, {"type": CHANGE_EVENT, "change": channels_change(total, updated_by)}
            )
        reply(f"ok {total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("ours", "channels"))
    parser.add_argument("--circle-key", required=True, help="the circle's public key (hex)")
    parser.add_argument(
        "--per-commit", type=int, default=1, help="ours: changes per transaction (a run writing that many)"
    )
    parser.add_argument("--updated-by", default="02" + "ab" * 32, help="the caller id the changes carry")
    args = parser.parse_args()
    if args.mode == "ours":
        run_ours(args.circle_key, args.updated_by, max(1, args.per_commit))
    else:
        asyncio.run(run_channels(args.circle_key, args.updated_by))


if __name__ == "__main__":
    main()
