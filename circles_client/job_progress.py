"""What `circles job run` shows on stderr while it waits: the elapsed time, the status, the log lines.

In a terminal one status line (`[  3.2 s] job 1c2f…: started`) is redrawn in place a few times a
second and log lines scroll above it; piped, each status change and each log line is a line of
its own, so a log file reads in order. stdout is left alone: it gets the job's output.
"""

import asyncio
import time
from collections.abc import Callable
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"
REDRAW_EVERY = 0.2  # seconds


def seconds(elapsed: float) -> str:
    return f"{elapsed:6.1f} s"


class Progress:
    """The progress of job `job_id` on `stream`; `live` (redrawn in place) when it is a terminal."""

    def __init__(
        self,
        job_id: str,
        stream: TextIO,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self.clock = clock
        self.started = clock()
        self.status = "created"
        self.log_lines = 0  # how many log lines were shown

    def elapsed(self) -> float:
        return self.clock() - self.started

    def _status_line(self) -> str:
        return f"[{seconds(self.elapsed())}] job {self.job_id}: {self.status}"

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def show_status(self, status: str) -> None:
        """The job's status changed (or not: then only the live line moves on)."""
        changed, self.status = status != self.status, status
        if self.live:
            self._write(CLEAR_LINE + self._status_line())
        elif changed:
            self._write(self._status_line() + "\n")

    def show_logs(self, logs: str) -> None:
        """New log lines (a notification's `logs`: lines joined with newlines)."""
        lines = logs.split("\n")
        self.log_lines += len(lines)
        text = "".join(line + "\n" for line in lines)
        if self.live:
            self._write(CLEAR_LINE + text + self._status_line())
        else:
            self._write(text)

    def show_missing_logs(self, all_logs: str | None) -> None:
        """The lines of the job's whole logs not shown yet (the last ones may come after the final status)."""
        if not all_logs:
            return
        missing = all_logs.split("\n")[self.log_lines :]
        if missing:
            self.show_logs("\n".join(missing))

    def finish(self, status: str, elapsed_ms: int | None = None) -> None:
        """The last line: how it ended and after how long (the server's run time too when known)."""
        self.status = status
        ran = f", ran {elapsed_ms / 1000:.3f} s" if elapsed_ms is not None else ""
        line = f"job {self.job_id}: {status} after {self.elapsed():.1f} s{ran}\n"
        self._write((CLEAR_LINE if self.live else "") + line)

    async def tick(self) -> None:
        """Redraw the live line until cancelled (nothing to do when not live)."""
        if not self.live:
            return
        while True:
            self._write(CLEAR_LINE + self._status_line())
            await asyncio.sleep(REDRAW_EVERY)
