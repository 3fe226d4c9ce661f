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
