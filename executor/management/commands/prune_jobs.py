"""`manage.py prune_jobs [--older-than DAYS]`: delete jobs that ended long ago (retention setting)."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from executor.job_store import prune


class Command(BaseCommand):
    help = "Delete finished and failed jobs that ended more than --older-than days ago."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=float, default=float(settings.CIRCLES_JOBS_RETENTION_DAYS), metavar="DAYS"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["older_than"] < 0:
            raise CommandError("--older-than must not be negative")
        self.stdout.write(f"deleted {prune(options['older_than'])} jobs")
