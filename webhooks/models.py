"""WebhookEndpoint (a circle's configuration for one provider) and WebhookEvent (one delivery)."""

from django.db import models
from django.db.models import Q


class WebhookEndpoint(models.Model):
    """A circle's secret and handler script for one provider.

    Without a row, a provider whose fallback secret is set in the environment
    (`STRIPE_WEBHOOK_SECRET`, `IDENFY_WEBHOOK_SECRET`) is accepted for every circle with the
    shipped default script, so a single-tenant setup needs no admin step. A row with a blank
    secret uses that fallback; a disabled row refuses the provider for its circle (404).
    """

    circle = models.ForeignKey("circles.Circle", on_delete=models.CASCADE, related_name="webhook_endpoints")
    provider = models.CharField(max_length=32)
    secret = models.CharField(
        max_length=255,
        blank=True,
        help_text="Signing secret; blank uses the provider's secret from the environment.",
    )
    enabled = models.BooleanField(default=True)
    script = models.TextField(blank=True, help_text="Rhai handler script; blank runs the shipped default.")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["circle", "provider"]
        constraints = [
            models.UniqueConstraint(fields=["circle", "provider"], name="unique_webhook_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} for {self.circle}"

    @property
    def masked_secret(self) -> str:
        """The secret as the admin shows it: its last four characters only."""
        if not self.secret:
            return "(from the environment)"
        return "•" * 8 + self.secret[-4:] if len(self.secret) > 8 else "•" * 8


class WebhookEvent(models.Model):
    """One delivery from a provider: what came, whether it was genuine, and how its run ended.

    Accepted events are unique on (provider, circle, event_id), which is what makes a
    redelivery a duplicate even when two arrive at once (the database refuses the second
    insert). Rejected requests (bad signature, malformed body) and duplicate deliveries are
    kept as small rows outside that constraint, at most `CIRCLES_WEBHOOK_NOISE_PER_MINUTE`
    per circle and provider (see `webhooks.recording`).
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "received (waiting to be queued)"
        REJECTED = "rejected", "rejected (bad signature or body)"
        QUEUED = "queued", "queued"
        PROCESSED = "processed", "processed"
        FAILED = "failed", "failed (retries exhausted)"
        DUPLICATE = "duplicate", "duplicate delivery"

    NOISE = (Status.REJECTED, Status.DUPLICATE)

    provider = models.CharField(max_length=32)
    circle = models.ForeignKey("circles.Circle", on_delete=models.CASCADE, related_name="webhook_events")
    event_id = models.CharField(max_length=255, null=True, blank=True)
    event_type = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True, help_text="The raw body as received (UTF-8), capped.")
    body_size = models.PositiveIntegerField(
        default=0, help_text="Bytes received (the body kept may be shorter)."
    )
    payload = models.JSONField(null=True, blank=True, help_text="The typed payload scripts get as EVENT.")
    signature_valid = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Runs of the handler so far.")
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the sweep (re)queues it: retry time, or lease end while queued.",
    )
    run_id = models.CharField(max_length=36, blank=True, help_text="The job now in charge of this event.")
    script_run = models.ForeignKey(
        "executor.ScriptRun", on_delete=models.SET_NULL, null=True, blank=True, related_name="webhook_events"
    )
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "circle", "event_id"],
                condition=Q(event_id__isnull=False) & ~Q(status__in=["rejected", "duplicate"]),
                name="unique_webhook_event",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_event_due"),
            models.Index(fields=["circle", "provider", "status", "received_at"], name="webhook_event_noise"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type or '?'} {self.event_id or ''} ({self.status})"
