"""The circle DSL's membership functions: `circle::add_member`, `set_role`, `remove_member`, `update`.

Each acts inside the run's transaction (a run that fails afterwards changes no membership),
counts as a write (the run's exactly-once mark is recorded, `executor.applied`), and follows
the rules of `circles.membership_rules` for the caller's role as it is in the database at that
moment. A refusal is a `DslError`: the run fails with kind `host` and a message that starts
with the function's name.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

import rhai

from circles import membership
from circles.membership_rules import NotAllowed
from circles.subjects import Subject, parse_subject
from executor.dsl import DslError, RunContext, current_run, note_written


def _actor(run: RunContext) -> membership.Actor:
    return membership.Actor(run.caller_id, run.caller_role, run.source or "ws", run.run_id or None)


def _subject(text: Any) -> Subject:
    try:
        return parse_subject(text)
    except ValueError as exc:
        raise NotAllowed(str(exc)) from exc


def _dsl(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make `function(run, ...)` a DSL function: the run in progress, a write, refusals as DslError."""

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(function)
        def call(*args: Any) -> Any:
            run = current_run()
            try:
                result = function(run, *args)
            except NotAllowed as exc:
                raise DslError(f"circle::{name}: {exc}") from exc
            note_written()  # even "nothing to change" is recorded: the run took the circle's lock
            return result

        return call

    return wrap


@_dsl("add_member")
def add_member(run: RunContext, key: Any, role: Any, name: Any = "") -> bool:
    """Give `key` (public key or Ethereum address) `role` (admin, member or guest); true when added."""
    return membership.add_member(run.circle_id, _actor(run), _subject(key), role, name)


@_dsl("set_role")
def set_role(run: RunContext, key: Any, role: Any) -> bool:
    """Change a member's role; true when it changed."""
    return membership.set_role(run.circle_id, _actor(run), _subject(key), role)


@_dsl("remove_member")
def remove_member(run: RunContext, key: Any) -> bool:
    """Remove a member; true when it was one."""
    return membership.remove_member(run.circle_id, _actor(run), _subject(key))


@_dsl("update")
def update(run: RunContext, changes: Any) -> dict[str, Any]:
    """Change the circle's name, description and/or allow_guests; returns field -> [old, new]."""
    return membership.update_circle(run.circle_id, _actor(run), changes)


def register_circle_changes(engine: rhai.Engine) -> None:
    """Register the membership functions into a `rhai.Engine`, in the `circle` module."""
    engine.register_fn("add_member", add_member, module="circle", arity=(2, 3))
    engine.register_fn("set_role", set_role, module="circle", arity=2)
    engine.register_fn("remove_member", remove_member, module="circle", arity=1)
    engine.register_fn("update", update, module="circle", arity=1)
