"""Per client address counts kept in this process (pure logic): open connections, attempts per window.

Every limit of `circles.limits` is per connection, so a client opening more sockets would
bypass them all; these count per client address instead (`circles.peer_address`).
"""

import time
from collections.abc import Callable


class ConnectionSlot:
    """One counted connection; `release` gives its place back (once, however often it is called)."""

    __slots__ = ("_counter", "address")

    def __init__(self, counter: "ConnectionCounter | None", address: str | None) -> None:
        self._counter = counter
        self.address = address

    def release(self) -> None:
        """Count the connection out (a second call does nothing)."""
        counter, self._counter = self._counter, None
        if counter is not None and self.address is not None:
            counter._count_out(self.address)


class ConnectionCounter:
    """The connections open from each address in this process."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def acquire(self, address: str | None, limit: int) -> ConnectionSlot | None:
        """A slot for one more connection from `address`, or None when `limit` are open already.

        A `limit` of 0 or less means no limit, and an address that cannot be told (None) is not
        limited either: neither is counted.
        """
        if limit <= 0 or address is None:
            return ConnectionSlot(None, None)
        count = self._open.get(address, 0)
        if count >= limit:
            return None
        self._open[address] = count + 1
        return ConnectionSlot(self, address)

    def open_from(self, address: str) -> int:
        """How many connections from `address` are counted now."""
        return self._open.get(address, 0)

    def _count_out(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)


class AttemptWindows:
    """Attempts per key within a window of `seconds` that a key's first attempt opens.

    Windows start at a key's own first attempt (not on the clock's minute), so a count never
    drops to zero just because a minute boundary passed. Keys whose window has ended are
    forgotten at the next attempt after a window's length, so memory follows the keys seen in
    the last two windows.
    """

    def __init__(self, seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}
        self._swept = clock()

    def attempt(self, key: str, limit: int) -> bool:
        """Count one attempt of `key`; False when it is over `limit` in the current window."""
        now = self._clock()
        self._sweep(now)
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.seconds:
            start, count = now, 0
        self._windows[key] = (start, count + 1)
        return count + 1 <= limit

    def __len__(self) -> int:
        return len(self._windows)

    def _sweep(self, now: float) -> None:
        if now - self._swept < self.seconds:
            return
        self._swept = now
        for key in [key for key, (start, _) in self._windows.items() if now - start >= self.seconds]:
            del self._windows[key]


connections = ConnectionCounter()  # the open circle WebSockets of this process, per address
