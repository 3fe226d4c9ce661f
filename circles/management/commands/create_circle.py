"""`manage.py create_circle`: make a circle, generating its key pair unless one is given."""

from typing import Any

import coincurve
from django.core.management.base import BaseCommand, CommandError, CommandParser

from auth_secp import InvalidPublicKey, canonical_public_key
from circles.models import Circle

DEMO_NAME = "demo"


class Command(BaseCommand):
    help = (
        "Create a circle. Without --pubkey a new key pair is generated and its private key is "
        "printed once: keep it, it is the circle owner's key and is not stored anywhere."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="", help="display name")
        parser.add_argument("--description", default="")
        parser.add_argument("--pubkey", help="use this public key (hex) instead of generating a key pair")
        parser.add_argument("--allow-guests", action="store_true", help="let any signed-in key run scripts")
        parser.add_argument("--inactive", action="store_true", help="create it disabled (closes 4404)")
        parser.add_argument(
            "--demo", action="store_true", help="create the demo circle unless it exists (used by `make run`)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["demo"]:
            existing = Circle.objects.filter(name=DEMO_NAME).first()
            if existing:
                self.stdout.write(
                    f"demo circle: {existing.public_key} (its private key was printed when it was made)"
                )
                return
            options["name"] = DEMO_NAME
            options["description"] = "Created by make run."
        private_hex = None
        if options["pubkey"]:
            try:
                public_key = canonical_public_key(options["pubkey"])
            except InvalidPublicKey as exc:
                raise CommandError(str(exc)) from exc
        else:
            private = coincurve.PrivateKey()
            private_hex = private.to_hex()
            public_key = private.public_key.format(compressed=True).hex()
        if Circle.objects.filter(public_key=public_key).exists():
            raise CommandError(f"a circle with key {public_key} exists already")
        circle = Circle.objects.create(
            public_key=public_key,
            name=options["name"],
            description=options["description"],
            allow_guests=options["allow_guests"],
            is_active=not options["inactive"],
        )
        self.stdout.write(f"circle {circle.name or '(unnamed)'}: {circle.public_key}")
        self.stdout.write(f"connect: ws://HOST:PORT/{circle.public_key}")
        if private_hex:
            self.stdout.write(f"owner private key (shown once, keep it secret): {private_hex}")
