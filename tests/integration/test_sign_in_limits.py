"""SignInLimiter against a real Redis: one count for every process, a key that always expires."""

import uuid

from circles.sign_in_limits import SignInLimiter
from tests.helpers.processes import free_port
from tests.helpers.redis_server import RedisServer


def prefix() -> str:
    return f"test-sign-ins:{uuid.uuid4().hex[:8]}"


async def test_limiters_sharing_a_redis_count_together(redis_server: RedisServer) -> None:
    shared = prefix()
    first, second = SignInLimiter(3, redis_server.url, shared), SignInLimiter(3, redis_server.url, shared)
    outcomes = [await limiter.attempt("192.0.2.1") for limiter in (first, second, first, second, first)]
    assert outcomes == [True, True, True, False, False]
    assert await second.attempt("192.0.2.2")  # another address has its own count
    assert len(first.local) == 0  # nothing was counted in the process


async def test_the_counting_key_expires_within_a_minute(redis_server: RedisServer) -> None:
    limiter = SignInLimiter(5, redis_server.url, prefix())
    await limiter.attempt("2001:db8::1")
    await limiter.attempt("2001:db8::1")
    client = redis_server.client()
    assert int(client.get(limiter.key("2001:db8::1"))) == 2
    assert 0 < client.ttl(limiter.key("2001:db8::1")) <= 60


async def test_without_redis_the_process_counts_alone() -> None:
    limiter = SignInLimiter(2, f"redis://127.0.0.1:{free_port()}/0", prefix())  # nothing listens there
    assert [await limiter.attempt("192.0.2.1") for _ in range(3)] == [True, True, False]
    assert len(limiter.local) == 1


async def test_no_limit_and_unknown_addresses_are_let_through(redis_server: RedisServer) -> None:
    unlimited = SignInLimiter(0, redis_server.url, prefix())
    assert all([await unlimited.attempt("192.0.2.1") for _ in range(5)])
    limited = SignInLimiter(1, redis_server.url, prefix())
    assert all([await limited.attempt(None) for _ in range(5)])
