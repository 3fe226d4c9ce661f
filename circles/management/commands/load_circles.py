"""`manage.py load_circles FILE`: create and update circles from a JSON or TOML file, idempotently."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from circles.circle_file import CircleFileError, read_circle_file
from circles.circle_loader import LoadRefused, load_circles


class Command(BaseCommand):
    help = (
        "Create or update the circles a JSON or TOML file declares (name, pubkey, description, "
        "allow_guests, active, members, init script). Circles are created once and their init "
        "script runs then, as the owner; loading again applies changes only. A bad entry or a "
        "failing init script refuses the whole file and changes nothing. Private keys of "
        "generated circles are printed once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="circles.json or circles.toml")
        parser.add_argument(
            "--prune-members",
            action="store_true",
            help="also remove members a circle's `members` list does not name (default: keep them)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            specs = read_circle_file(options["file"])
            outcomes = load_circles(specs, prune=options["prune_members"])
        except (CircleFileError, LoadRefused) as exc:
            raise CommandError(f"{exc}; nothing was changed") from exc
        for outcome in outcomes:
            self.stdout.write(outcome.line())
            if outcome.private_key:
                self.stdout.write(f"  owner private key (shown once, keep it secret): {outcome.private_key}")
