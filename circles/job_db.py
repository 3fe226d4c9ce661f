"""The jobs' database calls from the ASGI loop: on threads of their own, off channels' one thread.

`database_sync_to_async` runs every call thread-sensitively, on the one thread the whole process
shares; 16 members' `create_job` INSERTs and `start_job` UPDATEs queued there behind each other
(and behind every other call of the process), waiting 150-500 ms for statements of ~7 ms
(docs/benchmarks/jobs.md). On PostgreSQL the jobs' calls run on a small pool of their own
instead (CIRCLES_JOBS_DB_THREADS): Django's connections are per thread, so each thread keeps
its own (CONN_MAX_AGE), cleaned up around every call as `database_sync_to_async` does (but
without the health check's ping for a connection used within the last second,
`executor.db_health`), and closed when the pool is shut down. Embedded (SQLite, one writer at
a time) they stay on the shared thread: more writer threads would only wait on the write lock.
"""

import atexit
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection, connections

from executor.db_health import close_old_connections_lazily

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _close_thread_connections() -> None:
    connections.close_all()


def shutdown() -> None:
    """Close every pool thread's database connection and stop the pool (at exit; tests)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    threads = getattr(pool, "_max_workers", 1)
    for future in [pool.submit(_close_thread_connections) for _ in range(threads)]:
        future.result()
    pool.shutdown(wait=True)


class _JobCall(SyncToAsync):
    """A call on the jobs' pool, with the connection clean-up of `database_sync_to_async`."""

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        close_old_connections_lazily()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            close_old_connections()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(settings.CIRCLES_JOBS_DB_THREADS, thread_name_prefix="job-db")
            atexit.register(shutdown)
        return _pool


def own_threads() -> bool:
    """Whether job calls get threads of their own (not on SQLite, and the setting above 0)."""
    return connection.vendor != "sqlite" and settings.CIRCLES_JOBS_DB_THREADS > 0


def job_db(func: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """`func` (synchronous, using the database) as a coroutine function for the jobs' methods."""
    if not own_threads():
        return database_sync_to_async(func)
    wrapped: Any = _JobCall(func, thread_sensitive=False, executor=_executor())
    return wrapped
