"""The one way writes become changes: numbered in their transaction, announced once it commits.

Script runs (`executor.dsl`, at the end of `running`) and the admin's record deletions both
call `commit_changes` inside the transaction that wrote, as its last statements: the circle's
counter row is locked from there to the commit only. The changes are published
(`executor.change_feed.publish`) after the commit, never for a transaction that rolls back; a
queue worker's run hands them to the worker instead (`change_feed.collected`), which sends them
in the command that answers the job.
"""

from collections.abc import Sequence
from functools import partial

from django.db import transaction
from django.utils import timezone

from circles.changes import PendingChange, append_changes
from executor.change_feed import publish


def commit_changes(circle_id: int, pending: Sequence[PendingChange]) -> None:
    """Inside the writing transaction, just before it commits: number and insert `pending`, and
    publish them once (and only if) the outermost transaction commits. Nothing for no changes."""
    if not pending:
        return
    changes = append_changes(circle_id, pending, timezone.now())
    # robust: a publish that failed must not turn a committed run into a failed one (it never
    # raises, but the answer of a committed run must not hinge on that).
    transaction.on_commit(partial(publish, circle_id, changes), robust=True)
