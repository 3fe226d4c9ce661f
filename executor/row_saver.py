"""A thread that saves ScriptRun rows, so that saving them never holds the thread that runs scripts.

A worker (`executor.worker`) and the in-process executor (`executor.local`) answer a run first and
save its row after. Saved on the thread that ran it, the row held that thread (a worker's batch of
~70 rows took 30-130 ms on the 2-core machine; an in-process row a millisecond or two) while the
next play waited for it: with another member's long run on the other thread, every play of the
victim in docs/benchmarks/fairness.md did. Here rows go to a queue, and one thread with its own
database connection (Django's are per thread) saves them in one statement: whatever comes within
`GATHER_SECONDS` of the first row, up to `MAX_ROWS_PER_SAVE`. Saved as they came, one at a time,
each sequential play paid a transaction of its own on the database, and its process the
thread's work, right when the next play arrived (docs/benchmarks/fairness.md).
A process killed in between loses those rows, never a run: every run was answered. When the
database falls behind, at most `max_waiting` rows wait for the thread; past that, `save` saves on
the caller's thread, which slows the runs as saving on their thread did, instead of holding an
unbounded backlog in memory.
"""

import logging
import queue
import threading
import time

from django.db import close_old_connections, connections

from executor.models import ScriptRun
from executor.run_rows import save_runs

logger = logging.getLogger("executor.row_saver")

MAX_ROWS_PER_SAVE = 100  # rows saved in one statement at most (docs/benchmarks/play.md: 100, not 500)
MAX_WAITING_ROWS = 2_000  # rows handed over and not saved yet, at most; then the caller saves
GATHER_SECONDS = 0.25  # how long the thread waits for more rows before saving a short batch


class RowSaver:
    """Saves the rows handed to it on a thread of its own, in the order they were handed over."""

    def __init__(
        self, name: str, max_waiting: int = MAX_WAITING_ROWS, gather_seconds: float = GATHER_SECONDS
    ) -> None:
        self.name = name
        self.max_waiting = max_waiting
        self.gather_seconds = gather_seconds
        self.rows: queue.SimpleQueue[list[ScriptRun] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.waiting = 0  # rows handed to the thread and not saved yet

    def start(self) -> None:
        """Start the thread (until then, `save` saves on the caller's thread)."""
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name=f"row-saver-{self.name}", daemon=True)
                self.thread.start()

    def save(self, rows: list[ScriptRun]) -> None:
        """Have `rows` saved: by the thread once started and not `max_waiting` behind, else now."""
        with self.lock:
            handed = self.thread is not None and self.waiting + len(rows) <= self.max_waiting
            if handed:
                self.waiting += len(rows)
                self.rows.put(rows)
        if not handed:
            self._save(rows)

    def stop(self) -> None:
        """Save what was handed over, then end the thread."""
        with self.lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            self.rows.put(None)
            thread.join()

    def _loop(self) -> None:
        try:
            stopping = False
            while not stopping:
                rows = self.rows.get()
                if rows is None:
                    break
                gathered_by = time.monotonic() + self.gather_seconds
                while len(rows) < MAX_ROWS_PER_SAVE:  # what comes meanwhile goes in the same statement
                    try:
                        more = self.rows.get(timeout=max(0.0, gathered_by - time.monotonic()))
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    rows = rows + more
                close_old_connections()
                self._save(rows)
                with self.lock:
                    self.waiting -= len(rows)
        finally:
            connections.close_all()  # this thread's connection

    def _save(self, rows: list[ScriptRun]) -> None:
        try:
            save_runs(rows)
            return
        except Exception:  # the runs were answered; losing their rows must not stop the saving
            if len(rows) == 1:
                logger.exception("%s could not save run row %s", self.name, rows[0].id)
                return
        # One bad row (its circle deleted meanwhile, say) fails the whole statement: the others
        # are saved one by one rather than lost with it. One line for the lost ones, not one
        # traceback per row (with the database away, that would be a hundred per batch).
        lost = []
        for row in rows:
            try:
                save_runs([row])
            except Exception as exc:
                lost.append((row.id, exc))
        if lost:
            logger.error(
                "%s could not save %d of %d run rows (first: %s: %s)",
                self.name, len(lost), len(rows), lost[0][0], lost[0][1],
            )  # fmt: skip
