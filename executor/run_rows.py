"""Saving ScriptRun rows in bulk: one upsert statement.

On PostgreSQL the rows go as one JSON document, which the server expands into rows
(`json_populate_recordset`); elsewhere (SQLite) as `executemany`, values adapted only where they
need it.
"""

import uuid
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import orjson
from django.db import connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from executor.json_nul import without_nul
from executor.models import ScriptRun

Adapter = Callable[[Any], Any] | None  # None: the value goes to the driver as it is


def save_runs(rows: Iterable[ScriptRun | None]) -> None:
    """Insert `rows`; a row whose id exists already is overwritten, and None (a run the recording
    policy does not keep: `RunReport.run_row`) is skipped.

    A job runs again when its worker died (or lost Redis) before acknowledging it; the later
    run's row then replaces the earlier one instead of failing the worker on the primary key.

    `bulk_create(update_conflicts=True)` did the same at ~150 µs of CPU per row, nearly all of it
    preparing values field by field (docs/benchmarks/play.md). `executemany` with the values
    adapted only where they need it took ~80 µs per row on PostgreSQL, most of it psycopg binding
    22 parameters per row, and a save of 100 rows held the saving thread's share of the GIL long
    enough to show in the tail of every play of the process (docs/benchmarks/fairness.md). One
    JSON parameter for the whole batch costs ~15 µs per row.
    """
    recorded = [row for row in rows if row is not None]
    if not recorded:
        return
    connection = connections[router.db_for_write(ScriptRun)]
    if connection.vendor == "postgresql":
        # NUL made U+FFFD: PostgreSQL cannot hold it, and one script printing "\0" would
        # otherwise lose the whole batch's rows.
        document = without_nul(orjson.dumps([_json_row(row) for row in recorded]).decode())
        with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
            cursor.execute(_recordset_upsert(connection.alias), [document])
        return
    statement, adapters = _upsert(connection.alias)
    params = [
        [
            value if adapt is None else adapt(value)
            for adapt, value in zip(adapters, _values(row), strict=True)
        ]
        for row in recorded
    ]
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        cursor.executemany(statement, params)


def _values(row: ScriptRun) -> list[Any]:
    return [getattr(row, field.attname) for field in ScriptRun._meta.concrete_fields]


def _json_row(row: ScriptRun) -> dict[str, Any]:
    # orjson writes UUIDs and aware datetimes (RFC 3339) as PostgreSQL reads them; a JSON null
    # becomes SQL NULL, in the JSON columns too (as Django saves None).
    return {column: getattr(row, attname) for column, attname in _columns()}


@cache
def _columns() -> tuple[tuple[str, str], ...]:
    return tuple((field.column, field.attname) for field in ScriptRun._meta.concrete_fields)


def _on_conflict_update(alias: str) -> tuple[str, str]:
    """The quoted column list, and the `ON CONFLICT (id) DO UPDATE` clause that overwrites a row."""
    quote = connections[alias].ops.quote_name
    fields = ScriptRun._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    updates = ", ".join(
        f"{quote(field.column)} = EXCLUDED.{quote(field.column)}" for field in fields if not field.primary_key
    )
    return columns, f"ON CONFLICT ({quote(ScriptRun._meta.pk.column)}) DO UPDATE SET {updates}"


@cache
def _recordset_upsert(alias: str) -> str:
    """PostgreSQL: INSERT the rows of one JSON array parameter, ... ON CONFLICT."""
    columns, on_conflict = _on_conflict_update(alias)
    table = connections[alias].ops.quote_name(ScriptRun._meta.db_table)
    return (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(NULL::{table}, %s) {on_conflict}"
    )


@cache
def _upsert(alias: str) -> tuple[str, list[Adapter]]:
    """The INSERT ... ON CONFLICT statement and per-column adapters for database `alias`."""
    connection = connections[alias]
    columns, on_conflict = _on_conflict_update(alias)
    fields = ScriptRun._meta.concrete_fields
    statement = (
        f"INSERT INTO {connection.ops.quote_name(ScriptRun._meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) {on_conflict}"
    )
    return statement, [_adapter(field, connection) for field in fields]


def _adapter(field: models.Field, connection: BaseDatabaseWrapper) -> Adapter:
    ops = connection.ops
    if isinstance(field, models.UUIDField):
        native = connection.features.has_native_uuid_field
        return lambda value: _uuid(value) if native else _uuid(value).hex
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        return lambda value: None if value is None else ops.adapt_json_value(value, encoder)
    if isinstance(field, models.DateTimeField):
        return ops.adapt_datetimefield_value
    plain = (models.CharField, models.TextField, models.IntegerField, models.FloatField, models.ForeignKey)
    if isinstance(field, plain):
        return None  # str, int, float or None already (the ForeignKey's value is the circle's id)
    raise TypeError(f"ScriptRun.{field.name}: no adapter for {type(field).__name__}")


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
