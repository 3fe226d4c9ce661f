"""The circle DSL: what a script may do with its circle's data, registered into the engine.

Scripts see `db::put/get/delete/list/count`, `circle::info()` and `circle::members()`; the
membership changes (`circle::add_member` and the others) live in `executor.dsl_circle`.
Each function acts for the run in progress on this thread (`RunContext`), so one engine
serves every circle; the caller's role is checked here (writes need member or above,
or a service caller such as a webhook provider). An exception raised here becomes a host
error the script cannot catch, so the run fails and its transaction rolls back.
"""

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import rhai
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from auth_secp import ethereum_address, to_checksum_address
from circles.changes import PendingChange, record_bytes
from circles.models import Circle, Member, Record, RecordChange
from circles.record_rows import delete_record
from circles.roles import Role
from executor.change_commit import commit_changes
from executor.jobs import Job
from executor.json_nul import has_nul
from executor.values import NotJsonSafe, to_json

SERVICE_ROLE = "service"  # webhook providers: trusted to write, never an owner
NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,200}\Z")
COLLECTION = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")


class DslError(Exception):
    """A DSL call refused (bad argument, not allowed, over a cap); its message reaches the script's caller."""


@dataclass(frozen=True, slots=True)
class RunContext:
    """Who is running a script in which circle."""

    circle_id: int
    circle_key: str
    caller_id: str
    caller_role: str
    run_id: str = ""  # the job's run id (membership changes name the run that made them)
    source: str = ""  # ws, job, webhook:<provider>, init (what its changes say; "" counts as ws)

    @classmethod
    def for_job(cls, job: Job) -> "RunContext":
        """The context of `job`'s run."""
        return cls(job.circle_id, job.circle_key, job.caller_id, job.caller_role, job.run_id, job.source)

    @property
    def may_write(self) -> bool:
        """Members and above write; so do service callers (webhooks)."""
        if self.caller_role == SERVICE_ROLE:
            return True
        return Role(self.caller_role).at_least(Role.MEMBER)


_current = threading.local()  # .context: the run in progress; .atomic: its transaction, once open;
# .wrote: whether it has written; .pending: its record changes so far (appended when it commits);
# .committed_bytes: its circle's record bytes as committed, read at its first growing db::put


@contextmanager
def running(context: RunContext) -> Iterator[None]:
    """Make `context` the run in progress on this thread for the block, in one transaction.

    The transaction opens at the run's first DSL call, so a script that never touches the
    database costs no BEGIN and COMMIT (on SQLite a BEGIN IMMEDIATE takes the write lock).
    It commits when the block finishes and rolls back when the block raises. The run's
    `db::put`/`db::delete`s become numbered changes just before the commit, and are published
    after it (`executor.change_commit`); a run that rolls back leaves neither.
    """
    _current.context, _current.atomic, _current.wrote, _current.pending = context, None, False, []
    _current.committed_bytes = None
    try:
        yield
    except BaseException as exc:
        _end_transaction(type(exc), exc, exc.__traceback__)
        raise
    else:
        _end_transaction(None, None, None)
    finally:
        _current.context, _current.atomic, _current.pending = None, None, []


def _end_transaction(*exc_info: Any) -> None:
    atomic = _current.atomic
    if atomic is None:
        return
    _current.atomic = None
    pending, _current.pending = _current.pending, []
    if exc_info[0] is None and pending:
        try:
            # Last in the transaction: the circle's counter stays locked only until the commit.
            commit_changes(_current.context.circle_id, pending)
        except BaseException as exc:
            atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
    atomic.__exit__(*exc_info)


def _changed(
    run: RunContext, collection: str, key: str, version: int, data: dict | None, size_delta: int
) -> None:
    """Note a write of the run in progress, to be numbered when it commits (version 0: a delete)."""
    op = RecordChange.Op.PUT if data is not None else RecordChange.Op.DELETE
    _current.pending.append(
        PendingChange(collection, key, op, version, data, run.caller_id, run.source or "ws", size_delta)
    )


def _used_bytes(circle_id: int) -> int:
    """The bytes the circle's records take as the run in progress sees them: the committed total
    (one row read, once per run, whatever the circle's size) plus the run's own writes so far."""
    if _current.committed_bytes is None:
        _current.committed_bytes = record_bytes(circle_id)
    return _current.committed_bytes + sum(change.size_delta for change in _current.pending)


def current_run() -> RunContext:
    """The run in progress on this thread, its transaction opened (every DSL call starts here)."""
    context = getattr(_current, "context", None)
    if context is None:
        raise DslError("no script run in progress")
    if _current.atomic is None:
        atomic = transaction.atomic()
        atomic.__enter__()
        _current.atomic = atomic
    return context


def _collection(name: Any) -> str:
    if not isinstance(name, str) or not COLLECTION.match(name):
        raise DslError("collection must be 1-64 characters of letters, digits and _ . : -")
    return name


def _key(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise DslError("key must be 1-200 characters of letters, digits and _ . : @ -")
    return name


def _writer() -> RunContext:
    run = current_run()
    if not run.may_write:
        raise DslError(f"role {run.caller_role} may not write; member or above needed")
    _current.wrote = True
    return run


def note_written() -> None:
    """Mark the run in progress as one that wrote (its exactly-once mark is then recorded)."""
    current_run()
    _current.wrote = True


def run_has_written() -> bool:
    """Whether the run in progress on this thread has written (its transaction holds changes)."""
    return getattr(_current, "context", None) is not None and getattr(_current, "wrote", False)


def db_put(collection: Any, key: Any, data: Any) -> int:
    """Store map `data` at collection/key; returns the record's new version."""
    run = _writer()
    collection, key = _collection(collection), _key(key)
    if not isinstance(data, dict):
        raise DslError("db::put stores a map")
    try:
        data = to_json(data)
    except NotJsonSafe as exc:
        raise DslError(f"cannot store this value: {exc}") from exc
    encoded = orjson.dumps(data)
    if b"\\u0000" in encoded and has_nul(encoded.decode()):
        raise DslError("a record's strings cannot hold the NUL character (\\0)")
    size = len(encoded)
    if size > settings.CIRCLES_RECORD_MAX_BYTES:
        raise DslError(f"value of {size} bytes is over the {settings.CIRCLES_RECORD_MAX_BYTES}-byte cap")
    try:
        version, old_size = _store(run, collection, key, data, size)
    except _CreatedConcurrently:
        version, old_size = _store(run, collection, key, data, size)  # it exists now, locked for us
    _changed(run, collection, key, version, data, size - old_size)
    return version


class _CreatedConcurrently(Exception):
    """Another run created the record between our look and our insert (and has committed)."""


def _store(run: RunContext, collection: str, key: str, data: dict, size: int) -> tuple[int, int]:
    """Write the record; returns its new version and the size it had before (0 when new)."""
    record = Record.objects.filter(circle_id=run.circle_id, collection=collection, key=key)
    # Locked (PostgreSQL; SQLite's IMMEDIATE transaction already holds the write lock): the
    # version returned is the one this run wrote, whatever ran concurrently.
    existing = record.select_for_update().values_list("size", "version").first()
    old_size, version = existing or (0, 0)
    if size > old_size:  # only a write that grows the circle can take it over its cap
        # Like the SUM of the circle's records it replaces, it does not see other runs'
        # uncommitted writes: concurrent runs may pass the cap by a run's writes.
        used = _used_bytes(run.circle_id)
        if used - old_size + size > settings.CIRCLES_CIRCLE_MAX_BYTES:
            raise DslError(f"circle storage cap of {settings.CIRCLES_CIRCLE_MAX_BYTES} bytes reached")
    if existing is None:
        try:
            # A savepoint: two runs may both find no record; the second insert waits for the
            # first transaction, then fails, and that run updates the record instead.
            with transaction.atomic():
                Record.objects.create(
                    circle_id=run.circle_id,
                    collection=collection,
                    key=key,
                    data=data,
                    size=size,
                    updated_by=run.caller_id,
                )
        except IntegrityError as exc:
            raise _CreatedConcurrently from exc
        return 1, 0
    # update() skips auto_now: the time is set here.
    record.update(
        data=data, size=size, version=version + 1, updated_by=run.caller_id, updated_at=timezone.now()
    )
    return version + 1, old_size


def db_get(collection: Any, key: Any) -> dict | None:
    """The map at collection/key, or () when there is none."""
    run = current_run()
    return (
        Record.objects.filter(circle_id=run.circle_id, collection=_collection(collection), key=_key(key))
        .values_list("data", flat=True)
        .first()
    )


def db_delete(collection: Any, key: Any) -> bool:
    """Remove collection/key; true when something was removed."""
    run = _writer()
    collection, key = _collection(collection), _key(key)
    freed = delete_record(run.circle_id, collection, key)
    if freed is not None:  # deleting what is not there changes nothing, and says so to nobody
        _changed(run, collection, key, 0, None, -freed)
    return freed is not None


def db_list(collection: Any, limit: Any = 100, prefix: Any = "") -> list[Mapping[str, Any]]:
    """Up to `limit` records of a collection (keys in order, optionally starting with `prefix`).

    Each item is `#{key, data, version, updated_by}`.
    """
    run = current_run()
    if not isinstance(limit, int) or not 1 <= limit <= settings.CIRCLES_LIST_MAX:
        raise DslError(f"limit must be between 1 and {settings.CIRCLES_LIST_MAX}")
    if not isinstance(prefix, str):
        raise DslError("prefix must be a string")
    rows = Record.objects.filter(circle_id=run.circle_id, collection=_collection(collection))
    if prefix:
        rows = rows.filter(key__startswith=prefix)
    return list(rows.order_by("key").values("key", "data", "version", "updated_by")[:limit])


def db_count(collection: Any) -> int:
    """How many records a collection holds."""
    run = current_run()
    return Record.objects.filter(circle_id=run.circle_id, collection=_collection(collection)).count()


def circle_info() -> dict:
    """`#{id, name, description, allow_guests, members}` of the script's circle."""
    run = current_run()
    circle = Circle.objects.get(id=run.circle_id)
    return {
        "id": circle.public_key,
        "name": circle.name,
        "description": circle.description,
        "allow_guests": circle.allow_guests,
        "members": circle.members.count(),
    }


def circle_members() -> list[dict]:
    """The owner and every member: `#{pubkey, address, role, name}`.

    `pubkey` is () for a member added by address only; `address` is EIP-55 checksummed.
    """
    run = current_run()
    members = Member.objects.filter(circle_id=run.circle_id).values_list(
        "public_key", "address", "role", "display_name"
    )
    owner = {"pubkey": run.circle_key, "address": ethereum_address(run.circle_key), "role": Role.OWNER.value}
    return [{**owner, "name": ""}] + [
        {"pubkey": pubkey, "address": to_checksum_address(address), "role": role, "name": name}
        for pubkey, address, role, name in members
    ]


def register_dsl(engine: rhai.Engine) -> None:
    """Register the DSL's reading and record functions into a `rhai.Engine` (membership: `dsl_circle`)."""
    functions: dict[str, Callable[..., Any]] = {
        "put": db_put,
        "get": db_get,
        "delete": db_delete,
        "list": db_list,
        "count": db_count,
    }
    for name, function in functions.items():
        engine.register_fn(name, function, module="db")
    engine.register_fn("info", circle_info, module="circle")
    engine.register_fn("members", circle_members, module="circle")
