"""`manage.py add_member`: give a key a role in a circle (recorded and announced like any change)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from auth_secp import InvalidPublicKey, canonical_public_key
from circles import membership
from circles.membership_rules import GRANTABLE, NotAllowed
from circles.models import Circle
from circles.subjects import parse_subject


class Command(BaseCommand):
    help = "Add a member to a circle (by public key or Ethereum address), or change its role."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("circle", help="the circle's public key")
        parser.add_argument("pubkey", help="the member's public key or Ethereum address")
        parser.add_argument("--role", choices=GRANTABLE, default="member")
        parser.add_argument("--name", default="", help="display name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            circle_key = canonical_public_key(options["circle"])
            subject = parse_subject(options["pubkey"])
        except (InvalidPublicKey, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        circle = Circle.objects.filter(public_key=circle_key).first()
        if circle is None:
            raise CommandError(f"no circle with key {circle_key}")
        actor = membership.Actor.operator("add_member")
        try:
            with transaction.atomic():
                verb = "added"
                if not membership.add_member(circle.id, actor, subject, options["role"], options["name"]):
                    verb = "unchanged"
        except NotAllowed as exc:
            if "already a member" not in str(exc):
                raise CommandError(str(exc)) from exc
            with transaction.atomic():
                membership.set_role(circle.id, actor, subject, options["role"])
                if options["name"]:
                    circle.members.filter(address=subject.address).update(display_name=options["name"])
            verb = "updated"
        self.stdout.write(f"{verb} {subject.shown} as {options['role']} of {circle}")
