"""The pace of each caller's line-full refusals: prompt within a rate, spread out beyond it.

A `play` that finds its caller's line full (`executor.lines.LineFull`) is refused -32029. A caller
refused now and then is answered at once: each caller has a token bucket of `per_second` tokens
a second (as many in reserve). A caller past its rate is flooding, and its refusals are held,
each for a random part (at least half) of its play's remaining time. Two reasons:

* answered at once, a client that resends every refused play would cycle them through the server
  as fast as it can send (measured: ~1,400 refusals a second from one key, the other members'
  plays 30x slower);
* answered at its deadline (the unbounded line's way), a flood sent at one moment is answered
  at one moment, and sent again at once: every `timeout_ms` the server handles the whole batch
  together while other members' plays wait behind it.

Held for a random part of its time, a flood's refusals arrive spread out and their resends
with them, at most two for every `timeout_ms` per play in flight. Bookkeeping for one event loop.
"""

import random

# Callers whose bucket is full again are forgotten once this many are tracked.
PRUNE_ABOVE = 1024


class RefusalPace:
    """Each caller's refusal tokens in this process (`per_second` 0: every refusal at once)."""

    def __init__(self, per_second: float, chance: random.Random | None = None) -> None:
        self.per_second = per_second
        self._chance = chance or random.Random()
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when counted)

    def delay(self, caller: str, now: float, remaining: float) -> float:
        """Seconds to hold `caller`'s refusal of a play with `remaining` seconds left (0: at once)."""
        if self.per_second <= 0:
            return 0.0
        tokens, counted = self._buckets.get(caller, (self.per_second, now))
        tokens = min(self.per_second, tokens + (now - counted) * self.per_second)
        if len(self._buckets) > PRUNE_ABOVE:
            self._buckets = {key: value for key, value in self._buckets.items() if value[1] > now - 1}
        if tokens >= 1:
            self._buckets[caller] = (tokens - 1, now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        remaining = max(remaining, 0.0)
        return self._chance.uniform(remaining / 2, remaining)
