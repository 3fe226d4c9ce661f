"""A job slot's per-run writes of a job's row: one conditional UPDATE each, its new revision returned.

A run writes its job's row twice: `started` as it begins, its final status as it ends. Through
the ORM each took a lock, a full-row save and a re-read (`select_for_update`, `save`,
`refresh_from_db`, then another read for the end's event): five statements and most of a job
slot's CPU for a short job (docs/benchmarks/jobs.md). Here each is one `UPDATE ... WHERE <the
run is still the job's and in the right state> RETURNING revision, ...`: the condition is what
the lock and the check were for (a stopped job, another delivery's run, or a job that ended
never matches), and the statement takes the row's lock itself. PostgreSQL and SQLite (3.35 and
later) both have RETURNING; values go through the model's fields, so each backend gets its own
forms (UUIDs, datetimes, JSON).
"""

import uuid
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.db import connection
from django.db.models import Field
from django.utils.dateparse import parse_datetime

from executor.job_rules import ACTIVE, CREATED, DISPATCHED, STARTED
from executor.models import JobRecord

_fields = {field.name: field for field in JobRecord._meta.concrete_fields}


def _column(name: str) -> str:
    return connection.ops.quote_name(_fields[name].column)


def _prep(name: str, value: Any) -> Any:
    field: Field = _fields[name]
    return field.get_db_prep_save(value, connection)


def _datetime(value: Any) -> datetime | None:
    """A DATETIME column read without the ORM (SQLite answers text) as an aware datetime."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"not a datetime: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _update(
    sets: dict[str, Any],
    where: dict[str, Any],
    statuses: tuple[str, ...],
    returning: tuple[str, ...] = (),
    expressions: tuple[tuple[str, tuple[Any, ...]], ...] = (),
    conditions_sql: tuple[tuple[str, tuple[Any, ...]], ...] = (),
) -> tuple[Any, ...] | None:
    """UPDATE the job row matching `where`, a status in `statuses` and the SQL `conditions_sql`
    (condition, its params): set `sets`, the SQL `expressions` (assignment, its params) and
    revision + 1; the `returning` columns (revision first) of the row changed, or None when none
    matched."""
    table = connection.ops.quote_name(JobRecord._meta.db_table)
    revision = _column("revision")
    assignments = [f"{_column(name)} = %s" for name in sets]
    params = [_prep(name, value) for name, value in sets.items()]
    for assignment, values in expressions:
        assignments.append(assignment)
        params += values
    assignments.append(f"{revision} = {revision} + 1")
    conditions = [f"{_column(name)} = %s" for name in where]
    params += [_prep(name, value) for name, value in where.items()]
    conditions.append(f"{_column('status')} IN ({', '.join(['%s'] * len(statuses))})")
    params += [_prep("status", status) for status in statuses]
    for condition, values in conditions_sql:
        conditions.append(condition)
        params += values
    columns = ", ".join(_column(name) for name in ("revision", *returning))
    sql = f"UPDATE {table} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)} RETURNING {columns}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def mark_started(job_id: str, run_id: str, now: datetime) -> tuple[int, datetime] | None:
    """Run `run_id` of job `job_id` begins: `started`, one more delivery, this run's logs only
    (a dead worker's run is redone); (its revision, its started_at), or None when the job was
    stopped, ended, deleted or handed to another run."""
    row = _update(
        {"status": STARTED, "logs": None, "logs_size": 0, "updated_at": now},
        {"id": job_id, "run_id": run_id, "stop_requested": False},
        (DISPATCHED, STARTED),
        ("started_at",),
        (
            (f"{_column('deliveries')} = {_column('deliveries')} + 1", ()),
            (f"{_column('started_at')} = COALESCE({_column('started_at')}, %s)", (_prep("started_at", now),)),
        ),
    )
    if row is None:
        return None
    started_at = _datetime(row[1])
    assert started_at is not None  # set by this very statement when it was not
    return row[0], started_at


def mark_ended(job_id: str, run_id: str, fields: dict[str, Any]) -> tuple[int, bool] | None:
    """Set the final `fields` of job `job_id` if run `run_id` still holds it `started`; (its
    revision, whether another job names it as a prerequisite), or None when it ended another
    way (a stop, another delivery)."""
    row = _update(fields, {"id": job_id, "run_id": run_id}, (STARTED,), ("has_dependents",))
    return None if row is None else (row[0], bool(row[1]))


_DISPATCH_RETURNING = ("caller_id", "caller_role", "script", "timeout_seconds", "env_vars", "circle")


def dispatch_created(
    job_id: str, circle_id: int, caller_id: str | None, max_active: int, run_id: uuid.UUID, now: datetime
) -> JobRecord | None:
    """`start`'s common case in one statement: job `job_id` of circle `circle_id` (and of
    `caller_id`, unless None: a viewer who sees all), `created`, without prerequisites, its
    caller under `max_active` active jobs, becomes `dispatched` with run `run_id`. The record as
    written (the fields a run and its event need), or None when any condition failed (the caller
    then takes the long way, which says which).

    The active count is the one `start` makes under the job's row lock, in the same statement;
    like that one it does not lock the caller's other jobs."""
    table = connection.ops.quote_name(JobRecord._meta.db_table)
    where: dict[str, Any] = {"id": job_id, "circle": circle_id, "prerequisites": []}
    if caller_id is not None:
        where["caller_id"] = caller_id
    active = ", ".join(["%s"] * len(ACTIVE))
    circle, caller = _column("circle"), _column("caller_id")
    count = (
        f"(SELECT COUNT(*) FROM {table} AS others WHERE others.{circle} = {table}.{circle}"
        f" AND others.{caller} = {table}.{caller}"
        f" AND others.{_column('status')} IN ({active})) < %s"
    )
    row = _update(
        {"status": DISPATCHED, "run_id": run_id, "updated_at": now},
        where,
        (CREATED,),
        _DISPATCH_RETURNING,
        conditions_sql=((count, (*(_prep("status", status) for status in ACTIVE), max_active)),),
    )
    if row is None:
        return None
    revision, caller, role, script, timeout, env_vars, circle = row
    env_field: Any = _fields["env_vars"]  # a JSONField: decodes the text its column answers
    return JobRecord(
        id=uuid.UUID(job_id),
        circle_id=circle,
        caller_id=caller,
        caller_role=role,
        script=script,
        timeout_seconds=timeout,
        env_vars=env_field.from_db_value(env_vars, None, connection),
        prerequisites=[],
        status=DISPATCHED,
        run_id=run_id,
        revision=revision,
        updated_at=now,
    )


@cache
def _insert_sql(names: tuple[str, ...]) -> str:
    """The INSERT of a job row setting the fields `names`, in that order (built once per shape)."""
    columns = ", ".join(_column(name) for name in names)
    table = connection.ops.quote_name(JobRecord._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(names))})"


def insert_created(record: JobRecord) -> JobRecord:
    """INSERT `record` (a new `created` job, its fields set in memory) in one statement:
    `create_job`'s write, without the ORM's save (signals, the field walk, the SQL compiled per
    call). Each value is prepared by its field, as `save` would; a nullable field left None is
    left out (its column's NULL stands in), so the statement has fewer parameters to bind."""
    values = {field: getattr(record, field.attname) for field in _fields.values()}
    fields = [field for field, value in values.items() if value is not None or not field.null]
    params = [field.get_db_prep_save(values[field], connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(tuple(field.name for field in fields)), params)
    record._state.adding, record._state.db = False, connection.alias
    return record
