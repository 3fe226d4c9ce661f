"""`manage.py prune_changes`: delete the record changes past the retention window (docs/OPERATIONS.md)."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from circles.changes import prune_changes


class Command(BaseCommand):
    help = (
        "Delete the change log's rows past the retention window: beyond the newest --keep-per-circle "
        "of their circle (CIRCLES_CHANGES_KEEP_PER_CIRCLE) or older than --keep-days "
        "(CIRCLES_CHANGES_KEEP_DAYS). A subscriber resuming from before the window is told to re-read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keep-per-circle",
            type=int,
            default=settings.CIRCLES_CHANGES_KEEP_PER_CIRCLE,
            metavar="N",
            help="changes kept per circle, newest first (default CIRCLES_CHANGES_KEEP_PER_CIRCLE)",
        )
        parser.add_argument(
            "--keep-days",
            type=float,
            default=float(settings.CIRCLES_CHANGES_KEEP_DAYS),
            metavar="DAYS",
            help="changes younger than this are kept (default CIRCLES_CHANGES_KEEP_DAYS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        keep, days = options["keep_per_circle"], options["keep_days"]
        if keep < 0:
            raise CommandError("--keep-per-circle must not be negative")
        if days < 0:
            raise CommandError("--keep-days must not be negative")
        cutoff = timezone.now() - timedelta(days=days)
        deleted = prune_changes(keep_per_circle=keep, older_than=cutoff)
        self.stdout.write(
            f"deleted {deleted} record changes (kept at most {keep} per circle, none older than "
            f"{cutoff:%Y-%m-%d %H:%M})"
        )
