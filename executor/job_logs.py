"""A started job's printed lines: on its row and pushed to its watchers while it runs.

The run prints into a `rhai.LogTap` (the engine appends each line as it is printed, without
the GIL); one flusher thread per process (`Flusher`, started on first use) looks at the tap of
every run in progress every `POLL_SECONDS` and, when lines came and that run's last flush is
`FLUSH_EVERY_SECONDS` old, takes them, appends them to the job's row (`logs`, `logs_size`,
bounded by CIRCLES_JOBS_MAX_LOG_BYTES as the final logs are, `executor.job_rules.joined_logs`)
in a transaction of its own, and publishes one `started` event with `logs`, the new text. So
the first line is on the row and with the subscribers within a poll, `get_job_logs` answers
what the script printed up to a second ago, and a subscriber gets at most one `logs`
notification a second per job. A run that prints nothing costs no flush, and no run costs a
thread of its own (a thread per run was a start and a join on every short job's path).

The flusher writes only while the row is still `started` by this run: once the run's final
status is committed (the run wrote every line it printed with it), or a stop ended the job,
it writes nothing more. It never writes inside the run's transaction, so what the script
printed is on the row even when its run is rolled back (a failed or stopped job keeps its
logs). Its events carry the revision of their write: one published after the final event
is older and the subscriptions drop it (`circles.subscriptions`). One thread serves every run
of the process: a flush that waits on a lock (SQLite's write lock, held by another run's
transaction) holds the others' flushes back that long; on SQLite they would wait on the same
lock, and on PostgreSQL a flush locks only its own job's row.
"""

import logging
import threading
import time
import uuid

import rhai
from django.db import close_old_connections, transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone

from executor.job_events import event_of, publisher
from executor.job_rules import STARTED, joined_logs
from executor.models import JobRecord

logger = logging.getLogger("executor.job_logs")

FLUSH_EVERY_SECONDS = 1.0  # at most one flush (a DB write and a notification) a second per job
POLL_SECONDS = 0.05  # how soon lines printed after a quiet second are flushed


class Flusher:
    """The process's one thread flushing the logs of every run in progress, started on first use."""

    def __init__(self, poll: float = POLL_SECONDS) -> None:
        self.poll = poll
        self.runs: set[LiveLogs] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()  # set when a run is added: the thread sleeps while none runs
        self.thread: threading.Thread | None = None

    def add(self, live: "LiveLogs") -> None:
        """Flush `live` from now on, until `remove`."""
        with self.lock:
            self.runs.add(live)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._flushing, name="job-logs", daemon=True)
                self.thread.start()
        self.wake.set()

    def remove(self, live: "LiveLogs") -> None:
        """Flush `live` no more (a flush of it under way may still end)."""
        with self.lock:
            self.runs.discard(live)

    def _flushing(self) -> None:
        while True:
            with self.lock:
                runs = list(self.runs)
                if not runs:
                    self.wake.clear()
            if not runs:
                self.wake.wait()
                continue
            time.sleep(self.poll)
            flushed = False
            for live in runs:
                flushed = live.flush_if_due() or flushed
            if flushed:
                try:
                    close_old_connections()  # this thread's connection, as a request's end would
                except Exception as exc:  # the next flush connects afresh
                    logger.warning("could not close the log flusher's connection: %s", exc)


flusher = Flusher()


class LiveLogs:
    """The tap of run `run_id` of job `job_id`, flushed to its row by the process's flusher while it runs."""

    def __init__(self, job_id: str, run_id: str, max_bytes: int, every: float = FLUSH_EVERY_SECONDS) -> None:
        """Nothing is flushed until `start()`; `every` is the least time between two flushes."""
        self.job_id = job_id
        self.run_id = uuid.UUID(run_id)
        self.max_bytes = max_bytes
        self.every = every
        self.tap = rhai.LogTap()
        self.lines: list[str] = []
        self.stored = ""  # the text on the row: always a prefix of `text()`
        self.lock = threading.Lock()  # `lines` and `stored`: the flusher and `stop` both take lines
        self.flushing = threading.Lock()  # held by a flush: `stop` waits for one under way
        self.stopping = threading.Event()  # set: no more flushes (stopped, or the row ended)
        self.last = -every  # monotonic time of the last flush

    def start(self) -> "LiveLogs":
        """Begin flushing (call before the run starts)."""
        flusher.add(self)
        return self

    def stop(self) -> None:
        """Stop flushing once the run's end is committed, and collect the lines it did not take."""
        flusher.remove(self)
        with self.flushing:  # a flush under way ends first; none begins after
            self.stopping.set()
        self._collect()

    def text(self) -> str:
        """Everything the run printed so far, as the row keeps it (joined, bounded)."""
        with self.lock:
            return joined_logs(self.lines, self.max_bytes)

    def _collect(self) -> list[str]:
        lines = self.tap.take()
        if lines:
            with self.lock:
                self.lines += lines
        return lines

    def flush_if_due(self) -> bool:
        """The flusher's poll: flush when lines wait and the last flush is `every` old; whether it did."""
        if not self.tap.pending or time.monotonic() - self.last < self.every:
            return False
        with self.flushing:
            if self.stopping.is_set():
                return False
            self.last = time.monotonic()
            try:
                return self.flush()
            except Exception as exc:  # the row's logs lag; the run and its end are not disturbed
                logger.warning("could not flush the logs of job %s: %s", self.job_id, exc)
                return True  # its connection may be broken: let the flusher check it

    def flush(self) -> bool:
        """Append the lines printed since the last flush to the row and publish them; whether it did."""
        if not self._collect():
            return False
        text = self.text()
        new = text[len(self.stored) :]
        if not new:  # cut at the bound already: nothing more goes on the row
            return False
        with transaction.atomic():
            row = (
                JobRecord.objects.select_for_update()
                .filter(id=self.job_id, run_id=self.run_id, status=STARTED)
                .only("id", "circle_id", "caller_id", "status", "revision", "updated_at")
                .first()
            )
            if row is None:  # ended (its final write has every line), stopped or deleted
                self.stopping.set()
                return False
            row.revision += 1
            row.updated_at = timezone.now()
            JobRecord.objects.filter(id=row.id).update(
                logs=Concat(Coalesce(F("logs"), Value("", TextField())), Value(new, TextField())),
                logs_size=F("logs_size") + len(new.encode()),
                revision=row.revision,
                updated_at=row.updated_at,
            )
        pushed = new[1:] if self.stored and new.startswith("\n") else new  # the new lines, joined
        self.stored = text
        publisher.publish([(row.circle_id, {**event_of(row), "logs": pushed})])
        return True
