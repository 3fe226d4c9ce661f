"""App config for the executor: jobs, the queue, workers and the script DSL."""

from django.apps import AppConfig


class ExecutorConfig(AppConfig):
    """The executor app."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "executor"

    def ready(self) -> None:
        """Tell every process's role cache of each committed membership change (in every process)."""
        # Imported here, as Django asks: models cannot be imported before the apps are ready.
        from circles.membership import membership_changed
        from executor.membership_notices import on_membership_changed

        membership_changed.connect(on_membership_changed, dispatch_uid="executor.membership_notices")
