"""The reconnection schedule: full jitter under an exponentially growing, capped ceiling."""

import random
from itertools import islice

import pytest

from circles_client.backoff import Backoff


def test_ceilings_double_from_the_base_up_to_the_cap() -> None:
    backoff = Backoff(base=0.25, cap=5.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert backoff.ceiling(10_000) == 5.0  # no overflow however long the server stays away


def test_delays_are_jittered_within_their_ceiling_and_reproducible_with_a_seed() -> None:
    backoff = Backoff(base=0.25, cap=5.0)
    delays = list(islice(backoff.delays(random.Random(14)), 12))
    assert all(0 <= delay <= backoff.ceiling(n) for n, delay in enumerate(delays))
    assert delays == list(islice(backoff.delays(random.Random(14)), 12))  # the seed decides
    assert delays != list(islice(backoff.delays(random.Random(15)), 12))
    assert delays != sorted(delays)  # jittered: not a plain increasing schedule


def test_clients_dropped_together_spread_their_attempts() -> None:
    """A thousand clients' first attempts after one drop: spread over the window, not one instant."""
    backoff = Backoff(base=1.0, cap=10.0)
    rng = random.Random(1)
    first = [backoff.delay(0, rng) for _ in range(1000)]
    assert len(set(first)) == 1000
    buckets = [sum(1 for delay in first if k / 10 <= delay < (k + 1) / 10) for k in range(10)]
    assert all(60 <= count <= 140 for count in buckets), buckets  # uniform over [0, 1)
    later = [backoff.delay(3, rng) for _ in range(1000)]
    assert max(later) > 7 and min(later) < 1  # attempt 3 draws from the whole [0, 8]


@pytest.mark.parametrize(("base", "cap"), [(0, 1), (-1, 1), (2, 1)])
def test_a_schedule_that_makes_no_sense_is_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="0 < base <= cap"):
        Backoff(base=base, cap=cap)
