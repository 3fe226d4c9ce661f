"""The raw Redis list round trip of `bench.play` (the floor under any Redis-based job queue).

Worker: `python -m bench.raw_peer --url redis://127.0.0.1:PORT/2 --queue NAME` BRPOPs a job from
the list NAME, decodes it (orjson, like a worker must), and LPUSHes an outcome-shaped reply to the
list the job names in `reply_channel`; the client BRPOPs that list. Nothing else: no script, no
database, no acknowledgement. Stops on SIGTERM/SIGINT (after the BRPOP in hand, within 1 s).
"""

from __future__ import annotations

import argparse
import signal

import orjson
import redis


def reply_for(job: dict) -> bytes:
    """An answer the size and shape of a play outcome (`{run_id, ok, result: {...}}`)."""
    return orjson.dumps(
        {
            "type": "script.result",
            "run_id": job.get("run_id"),
            "outcome": {
                "run_id": job.get("run_id"),
                "ok": True,
                "result": {
                    "output": "2",
                    "value": 2,
                    "logs": [],
                    "run_id": job.get("run_id"),
                    "elapsed_ms": 0.01,
                },
            },
        }
    )


def serve(url: str, queue: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=2)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        item = client.brpop([queue], timeout=1)
        if item is None:
            continue
        job = orjson.loads(item[1])
        client.lpush(job["reply_channel"], reply_for(job))
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    args = parser.parse_args()
    serve(args.url, args.queue)


if __name__ == "__main__":
    main()
