"""App config for the executor: jobs, the queue, workers and the script DSL."""

from django.apps import AppConfig


class ExecutorConfig(AppConfig):
    """The executor app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "executor"
