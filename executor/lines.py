"""Per-caller lines: `play` requests over their caller's share wait here, in order, one line per caller.

Only the request at the head of a line tries to start; the others wait behind it without
costing anything. The head tries again when woken (a run of its caller ended in this process)
and every `poll_seconds` (a run ended elsewhere: another ASGI process, a worker). A line
belongs to one caller, so whatever waits in it never delays another caller's request, which
finds its own line empty and starts at once.

A line may be bounded (`max_waiting`): a request that finds that many already waiting is refused
at once (`LineFull`) instead of joining, so a caller far over its share learns it promptly and
the refusals of its excess come one by one as it sends, not all together at a shared deadline.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable


class LineFull(Exception):
    """The caller's line already holds its most waiting requests: this one did not join it."""


class _Waiter:
    __slots__ = ("wake",)

    def __init__(self) -> None:
        self.wake: asyncio.Future | None = None

    def nudge(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)


class Lines:
    """The lines of this process's callers (one event loop)."""

    def __init__(self, poll_seconds: float = 0.05, max_waiting: int = 0) -> None:
        self.poll_seconds = poll_seconds
        self.max_waiting = max_waiting  # 0: no bound
        self._lines: dict[str, deque[_Waiter]] = {}

    async def wait_turn(
        self, key: str, attempt: Callable[[], Awaitable[bool]], abort: asyncio.Future | None = None
    ) -> bool:
        """Wait in `key`'s line until `attempt()` succeeds at its head; False if `abort` finished first.

        `attempt` is tried at once when the line is empty (the usual case: no wait, no task).
        Errors from `attempt` and cancellation leave the line and pass through; the request
        behind then becomes the head and tries at once. LineFull when `max_waiting` requests
        already wait in `key`'s line (it is not tried then: the line's head comes first).
        """
        if key not in self._lines and await attempt():
            return True
        line = self._lines.setdefault(key, deque())
        if 0 < self.max_waiting <= len(line):
            raise LineFull(key)
        me = _Waiter()
        line.append(me)
        loop = asyncio.get_running_loop()
        tried = True  # the fast path just failed: the new head waits before trying again
        try:
            while True:
                head = line[0] is me
                if head and not tried and await attempt():
                    return True
                me.wake = loop.create_future()
                waits = [me.wake] if abort is None else [me.wake, abort]
                timeout = self.poll_seconds if head else None
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                me.wake = None
                if abort is not None and abort.done():
                    return False
                tried = False
        finally:
            line.remove(me)
            if line:
                line[0].nudge()  # the next request tries at once
            elif self._lines.get(key) is line:
                del self._lines[key]

    def wake(self, key: str) -> None:
        """A run of `key` ended: its line's head tries again now."""
        line = self._lines.get(key)
        if line:
            line[0].nudge()

    def wake_all(self) -> None:
        """A run ended that may have freed a circle's share: every line's head tries again now."""
        for line in self._lines.values():
            line[0].nudge()

    def waiting(self, key: str) -> int:
        """Requests waiting in `key`'s line."""
        return len(self._lines.get(key, ()))
