"""Deleting a circle's records with the bytes each freed, for the circle's running total.

One `DELETE … RETURNING size` per record (PostgreSQL and SQLite alike): the size is the one
deleted, whatever a concurrent run wrote before, so the total the commit adjusts stays exact.
A record has no dependent rows, so skipping the ORM's cascade collector loses nothing.
"""

from functools import cache

from django.db import connection

from circles.models import Record


@cache
def _delete_sql(by: str) -> str:
    quote = connection.ops.quote_name
    columns = {field.name: quote(field.column) for field in Record._meta.concrete_fields}
    where = (
        f"{columns['id']} = %s"
        if by == "id"
        else f"{columns['circle']} = %s AND {columns['collection']} = %s AND {columns['key']} = %s"
    )
    return f"DELETE FROM {quote(Record._meta.db_table)} WHERE {where} RETURNING {columns['size']}"


def _freed(sql: str, params: list[int | str]) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def delete_record(circle_id: int, collection: str, key: str) -> int | None:
    """Delete circle/collection/key; returns the bytes it took, or None when there was none."""
    return _freed(_delete_sql("key"), [circle_id, collection, key])


def delete_record_by_id(record_id: int) -> int | None:
    """Delete the record with this id; returns the bytes it took, or None when it was gone."""
    return _freed(_delete_sql("id"), [record_id])
