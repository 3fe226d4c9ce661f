"""Roles inside a circle and the order between them (pure logic, no database)."""

from enum import StrEnum


class Role(StrEnum):
    """What a signed-in key may do in a circle, weakest first."""

    GUEST = "guest"
    MEMBER = "member"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        """Position in the order guest < member < admin < owner."""
        return _ORDER.index(self)

    def at_least(self, minimum: "Role") -> bool:
        """True when this role is `minimum` or stronger."""
        return self.rank >= minimum.rank


_ORDER = [Role.GUEST, Role.MEMBER, Role.ADMIN, Role.OWNER]


def role_of(pubkey: str, *, circle_key: str, member_role: str | None) -> Role:
    """The role of a canonical `pubkey`: owner for the circle's own key, else its Member role, else guest."""
    if pubkey == circle_key:
        return Role.OWNER
    if member_role is not None:
        return Role(member_role)
    return Role.GUEST


def may_play(role: Role, *, allow_guests: bool) -> bool:
    """Whether `role` may run scripts: members and above, guests only where the circle allows them."""
    return role.at_least(Role.MEMBER) or allow_guests
