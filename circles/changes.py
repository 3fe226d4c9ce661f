"""The change log of circles' records: numbering committed writes, reading and pruning them.

A run's writes are collected as `PendingChange`s and appended by `append_changes` inside the
run's transaction, just before it commits: it locks the circle's `ChangeCounter` row, takes
the next numbers (adding the writes' byte differences to the circle's running total) and
inserts the rows. The lock is held only from there to the commit, so writers of one circle
queue for a moment, not for a whole script, and the numbers of a circle are gap-free and in
commit order (a run that rolls back releases the lock with its numbers unused, and its bytes
uncounted). The wire shape of a change is `change_object`.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from django.db import connection
from django.db.models import Max, Min

from circles.models import ChangeCounter, RecordChange


def iso(moment: datetime | None) -> str | None:
    """An aware datetime as ISO-8601 UTC with "Z" (milliseconds), or None."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A write made by a run in progress, not yet numbered."""

    collection: str
    key: str
    op: str  # RecordChange.Op: "put" or "delete"
    version: int  # the record's version after the write (0 for a delete)
    data: dict[str, Any] | None  # the record's data after a put
    updated_by: str
    source: str
    size_delta: int = 0  # what the write changed the circle's record bytes by (the storage cap)


@cache
def _numbering_sql(vendor: str) -> str:
    table = connection.ops.quote_name(ChangeCounter._meta.db_table)
    return (
        f"INSERT INTO {table} (circle_id, last_seq, record_bytes) VALUES (%s, %s, %s) "
        f"ON CONFLICT (circle_id) DO UPDATE SET last_seq = {table}.last_seq + excluded.last_seq, "
        f"record_bytes = {table}.record_bytes + excluded.record_bytes RETURNING last_seq"
    )


def _take_numbers(cursor: Any, circle_id: int, count: int, size_delta: int) -> int:
    """Take the circle's next `count` numbers and return the last, adding `size_delta` to its
    record bytes; its counter row stays locked.

    One statement (an upsert, PostgreSQL and SQLite alike): the first change of a circle creates
    its row, a concurrent first change waits for that insert and then adds to it.
    """
    cursor.execute(_numbering_sql(connection.vendor), [circle_id, count, size_delta])
    row = cursor.fetchone()
    if row is None:  # cannot happen: the upsert always returns its row
        raise RuntimeError(f"could not number the changes of circle {circle_id}")
    return int(row[0])


INSERT_ROWS = 500  # change rows per INSERT statement (10 parameters each: within every backend's limit)
_COLUMNS = (
    *("circle_id", "seq", "collection", "key", "op", "version"),
    *("data", "updated_by", "updated_at", "source"),
)


def append_changes(circle_id: int, pending: Sequence[PendingChange], at: datetime) -> list[dict[str, Any]]:
    """Number `pending` (in order) and insert them; call inside the writing run's transaction.

    Returns the change objects (`change_object`'s shape) as committed. One parametrized INSERT,
    not `bulk_create`: the model instances and field preparation took two thirds of what the
    change log cost a one-write `play` in the worker.
    """
    if not pending:
        return []
    if not connection.in_atomic_block:
        raise RuntimeError("append_changes runs inside the writing transaction")
    ops = connection.ops
    stored_at, when = ops.adapt_datetimefield_value(at), iso(at)
    changes: list[dict[str, Any]] = []
    params: list[Any] = []
    with connection.cursor() as cursor:
        size_delta = sum(change.size_delta for change in pending)
        last = _take_numbers(cursor, circle_id, len(pending), size_delta) - len(pending)
        for number, change in enumerate(pending, start=1):
            seq = last + number
            data = None if change.data is None else ops.adapt_json_value(change.data, None)
            params += (circle_id, seq, change.collection, change.key, change.op, change.version, data)
            params += (change.updated_by, stored_at, change.source)
            changes.append(
                {
                    "seq": seq,
                    "collection": change.collection,
                    "key": change.key,
                    "op": change.op,
                    "version": change.version,
                    "data": change.data,
                    "updated_by": change.updated_by,
                    "updated_at": when,
                    "source": change.source,
                }
            )
        step = INSERT_ROWS * len(_COLUMNS)
        for start in range(0, len(params), step):
            chunk = params[start : start + step]
            cursor.execute(_insert_sql(connection.vendor, len(chunk) // len(_COLUMNS)), chunk)
    return changes


@lru_cache(maxsize=64)
def _insert_sql(vendor: str, rows: int) -> str:
    """The INSERT of `rows` change rows (cached per backend, keyed by `vendor`)."""
    quote = connection.ops.quote_name
    table = quote(RecordChange._meta.db_table)
    columns = ", ".join(quote(column) for column in _COLUMNS)
    row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row] * rows)


def change_object(change: RecordChange) -> dict[str, Any]:
    """A change as clients see it (docs/PROTOCOL.md, "Live records")."""
    return {
        "seq": change.seq,
        "collection": change.collection,
        "key": change.key,
        "op": change.op,
        "version": change.version,
        "data": change.data,
        "updated_by": change.updated_by,
        "updated_at": iso(change.updated_at),
        "source": change.source,
    }


def head_seq(circle_id: int) -> int:
    """The circle's last committed change number (0 before its first change)."""
    last = ChangeCounter.objects.filter(circle_id=circle_id).values_list("last_seq", flat=True).first()
    return last or 0


@cache
def _record_bytes_sql() -> str:
    quote = connection.ops.quote_name
    return f"SELECT record_bytes FROM {quote(ChangeCounter._meta.db_table)} WHERE circle_id = %s"


def record_bytes(circle_id: int) -> int:
    """The bytes the circle's records take as last committed: one row read, whatever the
    circle's size (every committed write keeps the total, in `append_changes`)."""
    with connection.cursor() as cursor:
        cursor.execute(_record_bytes_sql(), [circle_id])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def oldest_seq(circle_id: int) -> int:
    """The oldest change number still kept (head + 1 when none is kept: nothing older can be read)."""
    oldest = RecordChange.objects.filter(circle_id=circle_id).aggregate(oldest=Min("seq"))["oldest"]
    return oldest if oldest is not None else head_seq(circle_id) + 1


def changes_after(
    circle_id: int, since: int, *, collection: str | None = None, prefix: str = "", limit: int = 1000
) -> list[RecordChange]:
    """Up to `limit` kept changes numbered above `since`, in order, optionally of one collection/prefix."""
    rows = RecordChange.objects.filter(circle_id=circle_id, seq__gt=since)
    if collection is not None:
        rows = rows.filter(collection=collection)
    if prefix:
        rows = rows.filter(key__startswith=prefix)
    return list(rows.order_by("seq")[:limit])


def head_seqs(circle_ids: Sequence[int]) -> dict[int, int]:
    """The last committed change number of each circle (one query; circles without changes: 0)."""
    heads = dict(
        ChangeCounter.objects.filter(circle_id__in=list(circle_ids)).values_list("circle_id", "last_seq")
    )
    return {circle_id: heads.get(circle_id, 0) for circle_id in circle_ids}


def prune_changes(*, keep_per_circle: int, older_than: datetime) -> int:
    """Delete the changes past the retention window: older than `older_than`, or beyond the
    newest `keep_per_circle` of their circle. Returns how many were deleted."""
    deleted, _ = RecordChange.objects.filter(updated_at__lt=older_than).delete()
    for circle_id, newest in RecordChange.objects.values_list("circle_id").annotate(newest=Max("seq")):
        more, _ = RecordChange.objects.filter(circle_id=circle_id, seq__lte=newest - keep_per_circle).delete()
        deleted += more
    return deleted
