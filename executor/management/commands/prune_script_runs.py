"""`manage.py prune_script_runs --older-than DAYS`: delete old ScriptRun and AppliedRun rows."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from executor.models import AppliedRun, ScriptRun


class Command(BaseCommand):
    help = "Delete script runs, and the marks of applied jobs, older than --older-than days (default 30)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", type=float, default=30.0, metavar="DAYS")
        parser.add_argument("--dry-run", action="store_true", help="only count what would go")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than"] < 0:
            raise CommandError("--older-than must not be negative")
        cutoff = timezone.now() - timedelta(days=options["older_than"])
        old = ScriptRun.objects.filter(queued_at__lt=cutoff)
        # A job is delivered again within minutes (claims, leases), never days: its mark can go.
        old_marks = AppliedRun.objects.filter(applied_at__lt=cutoff)
        if options["dry_run"]:
            self.stdout.write(
                f"{old.count()} script runs older than {cutoff:%Y-%m-%d %H:%M} would be deleted"
            )
            return
        deleted, _ = old.delete()
        marks, _ = old_marks.delete()
        self.stdout.write(
            f"deleted {deleted} script runs and {marks} applied-job marks older than {cutoff:%Y-%m-%d %H:%M}"
        )
