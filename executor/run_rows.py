"""Saving ScriptRun rows in bulk: one upsert statement, values adapted only where they need it."""

import uuid
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from django.db import connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from executor.models import ScriptRun

Adapter = Callable[[Any], Any] | None  # None: the value goes to the driver as it is


def save_runs(rows: Iterable[ScriptRun | None]) -> None:
    """Insert `rows`; a row whose id exists already is overwritten, and None (a run the recording
    policy does not keep: `RunReport.run_row`) is skipped.

    A job runs again when its worker died (or lost Redis) before acknowledging it; the later
    run's row then replaces the earlier one instead of failing the worker on the primary key.

    `bulk_create(update_conflicts=True)` did the same at ~150 µs of CPU per row, nearly all of it
    preparing values field by field (docs/benchmarks/play.md). Here the UUID, JSON and date
    values go through the connection's own adapters and the rest, which the runner made with
    the right Python types (str, int, float, None), go to the driver as they are.
    """
    recorded = [row for row in rows if row is not None]
    if not recorded:
        return
    connection = connections[router.db_for_write(ScriptRun)]
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


@cache
def _upsert(alias: str) -> tuple[str, list[Adapter]]:
    """The INSERT ... ON CONFLICT statement and per-column adapters for database `alias`."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = ScriptRun._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    updates = ", ".join(
        f"{quote(field.column)} = EXCLUDED.{quote(field.column)}" for field in fields if not field.primary_key
    )
    statement = (
        f"INSERT INTO {quote(ScriptRun._meta.db_table)} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) "
        f"ON CONFLICT ({quote(ScriptRun._meta.pk.column)}) DO UPDATE SET {updates}"
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
