"""`manage.py prune_script_runs --older-than DAYS`: delete old ScriptRun rows."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from executor.models import ScriptRun


class Command(BaseCommand):
    help = "Delete script runs that finished more than --older-than days ago (default 30)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=float, default=30.0, metavar="DAYS")
        parser.add_argument("--dry-run", action="store_true", help="only count what would go")

    def handle(self, *args, **options) -> None:
        if options["older_than"] < 0:
            raise CommandError("--older-than must not be negative")
        cutoff = timezone.now() - timedelta(days=options["older_than"])
        old = ScriptRun.objects.filter(queued_at__lt=cutoff)
        if options["dry_run"]:
            self.stdout.write(
                f"{old.count()} script runs older than {cutoff:%Y-%m-%d %H:%M} would be deleted"
            )
            return
        deleted, _ = old.delete()
        self.stdout.write(f"deleted {deleted} script runs older than {cutoff:%Y-%m-%d %H:%M}")
