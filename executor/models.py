"""ScriptRun: the record of one script execution, for operators."""

import uuid

from django.db import models


class ScriptRun(models.Model):
    """One run of a script (from `play` or a webhook): what ran, for whom, and how it ended."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        EXPIRED = "expired", "expired (deadline passed before it ran)"
        DEAD = "dead", "dead-lettered (too many deliveries)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    circle = models.ForeignKey("circles.Circle", on_delete=models.CASCADE, related_name="script_runs")
    caller_id = models.CharField(max_length=66, db_index=True)
    caller_role = models.CharField(max_length=16)
    source = models.CharField(max_length=40, db_index=True, help_text="ws, or webhook:<provider>")
    script = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    output = models.TextField(blank=True)
    value = models.JSONField(null=True, blank=True)
    logs = models.JSONField(default=list, blank=True)
    error_kind = models.CharField(max_length=20, blank=True)
    error_message = models.TextField(blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)
    error_column = models.PositiveIntegerField(null=True, blank=True)
    operations = models.PositiveBigIntegerField(default=0)
    elapsed_ms = models.FloatField(default=0.0, help_text="Time inside the engine.")
    attempts = models.PositiveSmallIntegerField(default=1)
    worker = models.CharField(max_length=120, blank=True)
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-queued_at"]

    def __str__(self) -> str:
        return f"{self.source} run {self.id} ({self.status})"

    @property
    def error(self) -> dict | None:
        """The error as clients saw it: `{kind, message, line, column}`, or None."""
        if not self.error_kind:
            return None
        return {
            "kind": self.error_kind,
            "message": self.error_message,
            "line": self.error_line,
            "column": self.error_column,
        }


class AppliedRun(models.Model):
    """The mark a run that wrote leaves in its own transaction: its job, and how it answered.

    Inserted in the same commit as the run's writes, under a unique key (`run:<run_id>`, or
    `event:<event_id>` for a webhook event's run), so a job delivered again after it committed
    (its worker killed before the acknowledgement, Redis restarted, a claim after an idle
    timeout, an event re-queued after its lease) finds it and answers from it instead of
    applying its writes a second time, and two deliveries running at once cannot both commit.
    """

    key = models.CharField(max_length=80, primary_key=True)
    circle = models.ForeignKey("circles.Circle", on_delete=models.CASCADE, related_name="+")
    run_id = models.UUIDField(help_text="The run that applied it.")
    outcome = models.JSONField(help_text="What the run answered.")
    applied_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.key} applied by run {self.run_id}"


class JobRecord(models.Model):
    """A job: a script a member created, started, watches and stops over the socket (issue 12).

    Not the queue's `executor.jobs.Job` (one run to do): a record lives on, so a client that
    reconnects reads its result. `revision` goes up on every change, so notifications of one job
    can be put in order (and one older than what a client saw dropped); `run_id` names the run
    in hand (its queue entry and cancel notice); `deliveries` counts its runs started.
    """

    class Status(models.TextChoices):
        CREATED = "created"
        DISPATCHED = "dispatched", "dispatched (queued, or waiting for prerequisites)"
        STARTED = "started"
        FINISHED = "finished"
        ERROR = "error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    circle = models.ForeignKey("circles.Circle", on_delete=models.CASCADE, related_name="jobs")
    caller_id = models.CharField(max_length=66)
    caller_role = models.CharField(max_length=16)
    script = models.TextField()
    timeout_seconds = models.PositiveIntegerField()
    env_vars = models.JSONField(default=dict, blank=True)
    prerequisites = models.JSONField(default=list, blank=True, help_text="Job ids, as text.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATED)
    output = models.TextField(null=True, blank=True)
    value = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True, help_text="{kind, message, line, column}")
    logs = models.TextField(
        null=True,
        blank=True,
        help_text=(
            "What the script printed so far: flushed at least once a second while it runs, "
            "all of it once it ended."
        ),
    )
    logs_size = models.PositiveIntegerField(default=0)
    revision = models.PositiveIntegerField(default=1)
    run_id = models.UUIDField(null=True, blank=True, help_text="The run in hand (queued or running).")
    deliveries = models.PositiveSmallIntegerField(default=0)
    stop_requested = models.BooleanField(default=False)
    has_dependents = models.BooleanField(
        default=False,
        help_text="Another job names it as a prerequisite: its end must release or fail that job.",
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    elapsed_ms = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["circle", "caller_id", "-created_at"], name="job_caller_newest"),
            models.Index(fields=["circle", "status"], name="job_circle_status"),
            # For the count of a caller's active jobs that every `start_job` makes (job_rows.
            # dispatch_created): by `job_caller_newest` it read every job the caller ever had.
            models.Index(
                fields=["circle", "caller_id"],
                name="job_caller_active",
                condition=models.Q(status__in=["dispatched", "started"]),
            ),
            models.Index(fields=["finished_at"], name="job_finished_at"),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"
