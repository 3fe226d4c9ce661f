"""Settings of `bench.job_costs --rowless`: the project's, the jobs' rows in memory (bench.rowless_jobs)."""

from circleproject.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.rowless_jobs.RowlessJobs"]  # noqa: F405
