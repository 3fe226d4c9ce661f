"""`manage.py prune_webhook_events --older-than DAYS [--noise-only]`: delete old WebhookEvent rows."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from webhooks.models import WebhookEvent

FINISHED = (*WebhookEvent.NOISE, WebhookEvent.Status.PROCESSED, WebhookEvent.Status.FAILED)


class Command(BaseCommand):
    help = (
        "Delete webhook events received more than --older-than days ago (default 30) that are finished "
        "(processed, failed, rejected, duplicate); --noise-only keeps processed and failed ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=float, default=30.0, metavar="DAYS")
        parser.add_argument("--noise-only", action="store_true", help="only rejected and duplicate rows")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than"] < 0:
            raise CommandError("--older-than must not be negative")
        cutoff = timezone.now() - timedelta(days=options["older_than"])
        statuses = WebhookEvent.NOISE if options["noise_only"] else FINISHED
        deleted, _ = WebhookEvent.objects.filter(received_at__lt=cutoff, status__in=statuses).delete()
        self.stdout.write(f"deleted {deleted} webhook events received before {cutoff:%Y-%m-%d %H:%M}")
