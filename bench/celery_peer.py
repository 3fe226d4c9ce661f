"""The Celery peer of `bench.play`: the same trivial script, dispatched through Celery on Redis.

A Celery app with a Redis broker and a Redis result backend, and one task that runs a script
with the real `rhai` module (one `rhai.Engine()` per worker process, built on first use, as our
workers keep one engine per process). Benchmark-only: `pip install -r requirements-bench.txt`.

Worker (one process, no pool children, no gossip/mingle/heartbeat chatter):

    BENCH_CELERY_URL=redis://127.0.0.1:PORT/1 python -m celery -A bench.celery_peer worker \\
        -P solo -c 1 -Q QUEUE -n NAME@bench --without-heartbeat --without-gossip --without-mingle

Client: `configure(url)` once, then `run_script.apply_async(("1 + 1",), queue=QUEUE).get()`
(`delay(...)` with the queue named, since `bench.play` keeps a 1-worker and a 2-worker queue).
"""

from __future__ import annotations

import os

from celery import Celery

DEFAULT_URL = "redis://127.0.0.1:6379/1"

app = Celery("bench_celery_peer")


def configure(url: str) -> None:
    """Point the app's broker and result backend at `url` (call before the first task is sent)."""
    app.conf.update(
        broker_url=url,
        result_backend=url,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        result_expires=3600,
    )


configure(os.environ.get("BENCH_CELERY_URL", DEFAULT_URL))

_engine = None


@app.task(name="bench.run_script")
def run_script(script: str):
    """Evaluate `script` with this process's Rhai engine and return its value."""
    global _engine
    if _engine is None:
        import rhai

        _engine = rhai.Engine()
    return _engine.eval(script)
