"""Role caches and membership versions: a change announced for a circle ends the trust in its cached roles."""

import asyncio
import dataclasses

from auth_secp import ChallengeBook
from circles.limits import ConnectionLimits
from circles.lookups import CircleInfo
from circles.roles import Role
from circles.session import CircleSession
from executor import membership_notices


async def _no_runner(session, script, timeout_ms):  # pragma: no cover - never called here
    raise AssertionError


def session_in(circle_id: int) -> CircleSession:
    limits = dataclasses.replace(ConnectionLimits.from_settings(), role_cache_seconds=3600)
    circle = CircleInfo(id=circle_id, public_key="02" + "11" * 32, name="c")
    session = CircleSession(circle, "peer", limits, ChallengeBook("s", circle.public_key), _no_runner)
    session.sign_in("02" + "22" * 32, Role.MEMBER)
    return session


def test_a_change_in_the_circle_ends_the_trust_at_once() -> None:
    session, elsewhere = session_in(9001), session_in(9002)
    assert session.may_play_without_lookup() and elsewhere.may_play_without_lookup()
    membership_notices.versions.bump(9001)
    assert not session.may_play_without_lookup() and not session.role_is_current()
    assert elsewhere.may_play_without_lookup()  # another circle's cache is untouched
    version = session.version_before_read()
    session.note_role_at(Role.GUEST, version)  # read again: a guest now, never trusted without a lookup
    assert session.role_is_current() and not session.may_play_without_lookup()


def test_a_change_during_the_read_is_not_missed() -> None:
    session = session_in(9003)
    version = session.version_before_read()
    membership_notices.versions.bump(9003)  # committed while the role was being read
    session.note_role_at(Role.MEMBER, version)
    assert not session.may_play_without_lookup()


def test_missed_notices_end_every_trust() -> None:
    session = session_in(9004)
    membership_notices.versions.bump_all()  # a listener (re)subscribed: notices may have been lost
    assert not session.may_play_without_lookup()


def test_with_redis_roles_are_trusted_only_while_subscribed(settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    session = session_in(9005)
    membership_notices.versions.subscribed = False
    assert not session.may_play_without_lookup()
    membership_notices.versions.subscribed = True
    try:
        assert session.may_play_without_lookup()
    finally:
        membership_notices.versions.subscribed = False


SQLITE = "django.db.backends.sqlite3"


def test_only_an_embedded_sqlite_file_has_a_notice_file(tmp_path) -> None:
    database = str(tmp_path / "circles.sqlite3")
    assert membership_notices._notice_file("", SQLITE, database) == database + "-membership"
    assert membership_notices._notice_file("redis://127.0.0.1:1/0", SQLITE, database) is None
    assert membership_notices._notice_file("", "django.db.backends.postgresql", "circles") is None
    for in_memory in (":memory:", "file:memorydb_default?mode=memory&cache=shared", ""):
        assert membership_notices._notice_file("", SQLITE, in_memory) is None


def test_a_change_another_process_appends_ends_every_trust(tmp_path, monkeypatch) -> None:
    notices = tmp_path / "circles.sqlite3-membership"
    monkeypatch.setattr(membership_notices, "notice_file", lambda: str(notices))
    session = session_in(9006)  # signed in before the file existed
    assert session.may_play_without_lookup()
    notices.write_bytes(b".")  # what `changed` appends in the process that made the change
    assert not session.may_play_without_lookup()
    session.note_role_at(Role.MEMBER, session.version_before_read())
    assert session.may_play_without_lookup()
    with notices.open("ab") as file:
        file.write(b".")
    assert not session.may_play_without_lookup()


def test_changed_appends_to_the_notice_file(tmp_path, monkeypatch, settings) -> None:
    settings.REDIS_URL = ""
    notices = tmp_path / "circles.sqlite3-membership"
    monkeypatch.setattr(membership_notices, "notice_file", lambda: str(notices))
    membership_notices.changed(9007)
    membership_notices.changed(9007)
    assert notices.read_bytes() == b".."


async def test_on_a_loop_the_notice_file_is_looked_at_once_per_turn(tmp_path, monkeypatch) -> None:
    """A change fanned out to 1,000 subscribers checks 1,000 standings in one turn of the loop:
    one stat for all of them; a change appended by another process is seen in the next turn."""
    notices = tmp_path / "circles.sqlite3-membership"
    monkeypatch.setattr(membership_notices, "notice_file", lambda: str(notices))
    looks: list[str] = []
    real_stat = membership_notices.os.stat

    def counted_stat(path, *args, **kwargs):
        looks.append(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(membership_notices.os, "stat", counted_stat)
    await asyncio.sleep(0)  # a fresh turn
    session = session_in(9008)
    for _ in range(1000):
        assert session.may_play_without_lookup()
    assert len(looks) == 1
    with notices.open("ab") as file:
        file.write(b".")
    await asyncio.sleep(0)
    assert not session.may_play_without_lookup()  # the next turn looked again
    assert len(looks) == 2
