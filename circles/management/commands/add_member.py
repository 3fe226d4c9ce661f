"""`manage.py add_member`: give a key a role in a circle."""

from django.core.management.base import BaseCommand, CommandError

from auth_secp import InvalidPublicKey, canonical_public_key
from circles.models import Circle, Member


class Command(BaseCommand):
    help = "Add a member to a circle, or change the role of an existing one."

    def add_arguments(self, parser) -> None:
        parser.add_argument("circle", help="the circle's public key")
        parser.add_argument("pubkey", help="the member's public key")
        parser.add_argument("--role", choices=[c for c, _ in Member.MemberRole.choices], default="member")
        parser.add_argument("--name", default="", help="display name")

    def handle(self, *args, **options) -> None:
        try:
            circle_key = canonical_public_key(options["circle"])
            member_key = canonical_public_key(options["pubkey"])
        except InvalidPublicKey as exc:
            raise CommandError(str(exc)) from exc
        circle = Circle.objects.filter(public_key=circle_key).first()
        if circle is None:
            raise CommandError(f"no circle with key {circle_key}")
        member, created = Member.objects.update_or_create(
            circle=circle,
            public_key=member_key,
            defaults={"role": options["role"], "display_name": options["name"]},
        )
        verb = "added" if created else "updated"
        self.stdout.write(f"{verb} {member.public_key} as {member.role} of {circle}")
