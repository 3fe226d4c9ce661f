"""The Rhai engine a process runs scripts with: limits from settings, the circle DSL registered."""

from functools import cache

import rhai
from django.conf import settings

from executor.dsl import register_dsl
from executor.dsl_circle import register_circle_changes


def build_engine(**overrides: int) -> rhai.Engine:
    """A new engine with the `CIRCLES_SCRIPT_*` limits (`overrides` replacing some) and the DSL."""
    engine = rhai.Engine(**{**settings.CIRCLES_SCRIPT_LIMITS, **overrides})
    register_dsl(engine)
    register_circle_changes(engine)
    return engine


@cache
def shared_engine() -> rhai.Engine:
    """This process's engine (thread-safe: every thread of the process shares it)."""
    return build_engine()


@cache
def job_engine() -> rhai.Engine:
    """The engine jobs run on: the same DSL, with the jobs' timeout cap, operations and log size."""
    return build_engine(
        timeout_ms=settings.CIRCLES_JOBS_TIMEOUT_MAX_SECONDS * 1000,
        max_operations=settings.CIRCLES_JOBS_MAX_OPERATIONS,
        max_output_size=settings.CIRCLES_JOBS_MAX_LOG_BYTES,
    )
