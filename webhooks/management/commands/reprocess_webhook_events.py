"""`manage.py reprocess_webhook_events ID [ID ...]`: run events' handlers again (as the admin action does)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from webhooks.processing import reprocess


class Command(BaseCommand):
    help = (
        "Queue the given webhook events again (attempts start over); rejected and duplicate rows are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("event_ids", nargs="+", type=int, metavar="ID")

    def handle(self, *args: Any, **options: Any) -> None:
        queued, waiting = reprocess(options["event_ids"])
        self.stdout.write(f"{queued} events queued again, {waiting} waiting for the queue")
