"""The per-connection session: sign-in state and how long a role is trusted without a lookup."""

import dataclasses
import time

from auth_secp import ChallengeBook
from circles.limits import ConnectionLimits
from circles.lookups import CircleInfo
from circles.roles import Role
from circles.session import CircleSession


async def _no_runner(session, script, timeout_ms):  # pragma: no cover - never called here
    raise AssertionError


def session_with(role_cache_seconds: float) -> CircleSession:
    limits = dataclasses.replace(ConnectionLimits.from_settings(), role_cache_seconds=role_cache_seconds)
    circle = CircleInfo(id=1, public_key="02" + "11" * 32, name="c")
    return CircleSession(circle, "peer", limits, ChallengeBook("s", circle.public_key), _no_runner)


def test_a_fresh_member_role_is_trusted() -> None:
    session = session_with(60)
    assert not session.may_play_without_lookup()  # not signed in
    session.sign_in("02" + "22" * 32, Role.MEMBER)
    assert session.authenticated and session.may_play_without_lookup()


def test_a_guest_role_is_always_looked_up() -> None:
    session = session_with(60)
    session.sign_in("02" + "22" * 32, Role.GUEST)
    assert not session.may_play_without_lookup()


def test_a_stale_role_is_looked_up_again() -> None:
    session = session_with(0.05)
    session.sign_in("02" + "22" * 32, Role.ADMIN)
    time.sleep(0.06)
    assert not session.may_play_without_lookup()
    session.note_role(Role.ADMIN)
    assert session.may_play_without_lookup()


def test_sign_out_forgets_the_role() -> None:
    session = session_with(60)
    session.sign_in("02" + "22" * 32, Role.OWNER)
    session.sign_out()
    assert not session.authenticated and not session.may_play_without_lookup()
