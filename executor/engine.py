"""The Rhai engine a process runs scripts with: limits from settings, the circle DSL registered."""

from functools import cache

import rhai
from django.conf import settings

from executor.dsl import register_dsl
from executor.dsl_circle import register_circle_changes


def build_engine() -> rhai.Engine:
    """A new engine with the `CIRCLES_SCRIPT_*` limits and the DSL."""
    engine = rhai.Engine(**settings.CIRCLES_SCRIPT_LIMITS)
    register_dsl(engine)
    register_circle_changes(engine)
    return engine


@cache
def shared_engine() -> rhai.Engine:
    """This process's engine (thread-safe: every thread of the process shares it)."""
    return build_engine()
