"""Saving ScriptRun rows in bulk: every column round-trips, a re-run overwrites, None stays NULL."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from executor.models import ScriptRun
from executor.run_rows import save_runs
from tests.helpers.processes import manage, server_env

pytestmark = pytest.mark.django_db


def a_run(circle, **fields) -> ScriptRun:
    queued = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)
    values = {
        "id": str(uuid.uuid4()),
        "circle_id": circle.id,
        "caller_id": "02" + "ab" * 32,
        "caller_role": "member",
        "source": "ws",
        "script": 'print("é"); #{a: [1, 2.5, "x", ()]}',
        "status": ScriptRun.Status.SUCCEEDED,
        "output": '#{a: [1, 2.5, "x", ()]}',
        "value": {"a": [1, 2.5, "x", None], "ünïcode": True},
        "logs": ["é", "second line"],
        "operations": 2**40,
        "elapsed_ms": 0.125,
        "attempts": 2,
        "worker": "host-1234",
        "queued_at": queued,
        "started_at": queued + timedelta(milliseconds=1),
        "finished_at": queued + timedelta(milliseconds=2),
    }
    values.update(fields)
    return ScriptRun(**values)


def test_every_column_round_trips(circle) -> None:
    check_round_trip(circle)


def test_every_column_round_trips_on_sqlite(tmp_path) -> None:
    """The embedded default's database, through Django's own SQLite backend (a process of its own)."""
    env = server_env(f"sqlite:///{tmp_path / 'rows.sqlite3'}")
    manage(env, "migrate", "--verbosity", "0")
    code = (
        "from circles.models import Circle; from tests.integration.test_run_rows import check_round_trip; "
        "check_round_trip(Circle.objects.create(public_key='02' + 'ab' * 32, name='x')); print('same')"
    )
    assert manage(env, "shell", "--command", code).stdout.splitlines()[-1] == "same"


def check_round_trip(circle) -> None:
    """Save a run with every column set and read it back equal."""
    run = a_run(circle)
    save_runs([run])
    saved = ScriptRun.objects.get(id=run.id)
    for field in ScriptRun._meta.concrete_fields:
        expected = getattr(run, field.attname)
        if field.primary_key:
            expected = uuid.UUID(expected)
        assert getattr(saved, field.attname) == expected, field.name


def test_a_failed_run_keeps_its_error_and_a_null_value(circle) -> None:
    run = a_run(
        circle,
        status=ScriptRun.Status.FAILED,
        value=None,
        logs=[],
        output="",
        error_kind="runtime",
        error_message="boom",
        error_line=3,
        error_column=7,
        started_at=None,
    )
    save_runs([run])
    saved = ScriptRun.objects.get(id=run.id)
    assert saved.error == {"kind": "runtime", "message": "boom", "line": 3, "column": 7}
    assert saved.started_at is None and saved.logs == []
    assert ScriptRun.objects.filter(id=run.id, value__isnull=True).exists()  # SQL NULL, not JSON null


def test_saving_a_run_again_overwrites_it(circle) -> None:
    first = a_run(circle, attempts=1, worker="w1")
    save_runs([first, a_run(circle)])
    again = a_run(circle, id=first.id, attempts=2, worker="w2", status=ScriptRun.Status.FAILED)
    save_runs([again])
    assert ScriptRun.objects.count() == 2
    saved = ScriptRun.objects.get(id=first.id)
    assert (saved.attempts, saved.worker, saved.status) == (2, "w2", "failed")


def test_many_rows_in_one_call(circle) -> None:
    save_runs([a_run(circle) for _ in range(1200)])
    assert ScriptRun.objects.count() == 1200


def test_a_nul_character_is_saved_as_a_replacement_not_lost_with_its_batch(circle) -> None:
    """PostgreSQL's text and jsonb cannot hold NUL: a run printing "\\0" must not cost the other
    rows of its batch. A backslash before "u0000" is text, and stays as it is."""
    assert connection.vendor == "postgresql"  # the integration suite's database
    odd = a_run(circle, output="a\x00b", value={"k\x00": ["\x00\x00"]}, logs=["\\u0000", "\\\x00"])
    other = a_run(circle)
    save_runs([odd, other])
    saved = ScriptRun.objects.get(id=odd.id)
    assert saved.output == "a\ufffdb"
    assert saved.value == {"k\ufffd": ["\ufffd\ufffd"]}
    assert saved.logs == ["\\u0000", "\\\ufffd"]
    assert ScriptRun.objects.filter(id=other.id).exists()
