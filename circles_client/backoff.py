"""Full-jitter exponential backoff: how long to wait before each reconnection attempt.

Attempt `n` (from 0) waits a uniformly random time between 0 and `min(cap, base * 2**n)`
("full jitter"): after a server restart, clients that all lost their connection at the same
instant spread their attempts over the whole window instead of arriving together.
"""

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """The reconnection schedule: `base` seconds doubling per attempt up to `cap`, fully jittered."""

    base: float = 0.25
    cap: float = 10.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"backoff needs 0 < base <= cap (got base={self.base}, cap={self.cap})")

    def ceiling(self, attempt: int) -> float:
        """The longest wait before attempt `attempt` (0 for the first)."""
        return min(self.cap, self.base * 2 ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A random wait before attempt `attempt`, between 0 and its ceiling."""
        return rng.uniform(0, self.ceiling(attempt))

    def delays(self, rng: random.Random) -> Iterator[float]:
        """The waits before attempts 0, 1, 2, … (endless)."""
        attempt = 0
        while True:
            yield self.delay(attempt, rng)
            attempt += 1
