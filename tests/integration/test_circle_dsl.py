"""The circle DSL's membership functions, rule by rule, in the run's transaction (run_job, real database)."""

import pytest

from circles.models import Circle, Member, MembershipChange
from executor.jobs import Job
from executor.models import AppliedRun
from executor.runner import run_job
from tests.helpers.keys import WalletKey

pytestmark = pytest.mark.django_db

OWNER = WalletKey.named("dsl-circle-owner")
ADMIN = WalletKey.named("dsl-circle-admin")
OTHER_ADMIN = WalletKey.named("dsl-circle-admin-2")
MEMBER = WalletKey.named("dsl-circle-member")
GUEST = WalletKey.named("dsl-circle-guest")
NEW = WalletKey.named("dsl-circle-new")


@pytest.fixture
def circle(db) -> Circle:
    circle = Circle.objects.create(public_key=OWNER.pubkey, name="rules")
    for key, role in ((ADMIN, "admin"), (OTHER_ADMIN, "admin"), (MEMBER, "member"), (GUEST, "guest")):
        Member.objects.create(circle=circle, public_key=key.pubkey, role=role)
    return circle


def run(circle: Circle, caller: WalletKey | str, script: str, role: str | None = None) -> dict:
    caller_id = caller if isinstance(caller, str) else caller.pubkey
    if role is None:
        role = "owner" if caller_id == circle.public_key else Member.objects.get(public_key=caller_id).role
    job = Job.for_timeout(
        circle_id=circle.id,
        circle_key=circle.public_key,
        caller_id=caller_id,
        caller_role=role,
        source="ws",
        script=script,
        timeout_ms=5000,
    )
    return run_job(job).outcome


def value(circle: Circle, caller, script: str, role: str | None = None):
    outcome = run(circle, caller, script, role)
    assert outcome["ok"], outcome
    return outcome["result"]["value"]


def refused(circle: Circle, caller, script: str, role: str | None = None) -> str:
    outcome = run(circle, caller, script, role)
    assert not outcome["ok"] and outcome["error"]["kind"] == "host", outcome
    return outcome["error"]["message"]


def roles(circle: Circle) -> dict[str, str]:
    return {m.public_key or m.address: m.role for m in circle.members.all()}


def test_the_owner_adds_changes_and_removes_any_role(circle: Circle) -> None:
    assert value(circle, OWNER, f'circle::add_member("{NEW.pubkey}", "admin")') is True
    assert value(circle, OWNER, f'circle::add_member("{NEW.pubkey}", "admin")') is False  # already
    assert value(circle, OWNER, f'circle::set_role("{NEW.pubkey}", "member")') is True
    assert value(circle, OWNER, f'circle::set_role("{ADMIN.pubkey}", "guest")') is True
    assert value(circle, OWNER, f'circle::remove_member("{OTHER_ADMIN.pubkey}")') is True
    assert value(circle, OWNER, f'circle::remove_member("{OTHER_ADMIN.pubkey}")') is False
    assert roles(circle) == {
        ADMIN.pubkey: "guest",
        MEMBER.pubkey: "member",
        GUEST.pubkey: "guest",
        NEW.pubkey: "member",
    }


def test_the_owner_updates_the_circle_settings(circle: Circle) -> None:
    changed = value(circle, OWNER, 'circle::update(#{name: "renamed", allow_guests: true})')
    assert changed == {"name": ["rules", "renamed"], "allow_guests": [False, True]}
    assert value(circle, OWNER, 'circle::update(#{name: "renamed"})') == {}
    info = value(circle, OWNER, 'circle::update(#{description: "about"}); circle::info()')
    assert (info["name"], info["description"], info["allow_guests"]) == ("renamed", "about", True)


def test_a_key_may_be_added_by_address_and_given_a_name(circle: Circle) -> None:
    assert value(circle, OWNER, f'circle::add_member("{NEW.address}", "member", "Newcomer")') is True
    row = Member.objects.get(circle=circle, address=NEW.address.lower())
    assert row.public_key is None and row.display_name == "Newcomer"
    listed = value(circle, OWNER, "circle::members()")
    assert listed[0] == {"pubkey": OWNER.pubkey, "address": OWNER.address, "role": "owner", "name": ""}
    assert {"pubkey": None, "address": NEW.address, "role": "member", "name": "Newcomer"} in listed
    # The key itself, by public key, is the same member: its role is found and can change.
    assert circle.role_for(NEW.pubkey) == "member"
    assert value(circle, OWNER, f'circle::set_role("{NEW.pubkey}", "admin")') is True
    assert value(circle, OWNER, f'circle::remove_member("{NEW.address.lower()}")') is True


def test_an_admin_manages_members_and_guests(circle: Circle) -> None:
    assert value(circle, ADMIN, f'circle::add_member("{NEW.pubkey}", "member")') is True
    assert value(circle, ADMIN, f'circle::set_role("{NEW.pubkey}", "guest")') is True
    assert value(circle, ADMIN, f'circle::set_role("{MEMBER.pubkey}", "guest")') is True
    assert value(circle, ADMIN, f'circle::remove_member("{GUEST.pubkey}")') is True
    assert value(circle, ADMIN, f'circle::remove_member("{NEW.pubkey}")') is True


@pytest.mark.parametrize(
    ("script", "says"),
    [
        (f'circle::add_member("{NEW.pubkey}", "admin")', "circle::add_member: an admin may not add admins"),
        (f'circle::set_role("{MEMBER.pubkey}", "admin")', "circle::set_role: an admin may not make admins"),
        (f'circle::set_role("{OTHER_ADMIN.pubkey}", "member")', "may not change an admin's role"),
        (
            f'circle::remove_member("{OTHER_ADMIN.pubkey}")',
            "circle::remove_member: an admin may not remove admins",
        ),
        (f'circle::remove_member("{ADMIN.pubkey}")', "an admin may not remove admins"),  # itself neither
        (f'circle::remove_member("{OWNER.pubkey}")', "circle::remove_member: the owner cannot be removed"),
        (f'circle::set_role("{OWNER.address}", "member")', "the owner's role cannot be changed"),
        (
            'circle::update(#{name: "mine"})',
            "circle::update: role admin may not change the circle's settings",
        ),
    ],
)
def test_an_admin_may_not_touch_admins_the_owner_or_settings(circle: Circle, script: str, says: str) -> None:
    before = roles(circle)
    assert says in refused(circle, ADMIN, script)
    assert roles(circle) == before and Circle.objects.get(id=circle.id).name == "rules"


@pytest.mark.parametrize("caller", [MEMBER, GUEST, NEW])
@pytest.mark.parametrize(
    "script",
    [
        f'circle::add_member("{WalletKey.named("x").pubkey}", "member")',
        f'circle::set_role("{GUEST.pubkey}", "member")',
        f'circle::remove_member("{GUEST.pubkey}")',
        f'circle::set_role("{WalletKey.named("x").pubkey}", "member")',  # not a member: same refusal
    ],
)
def test_members_and_guests_change_nothing(circle: Circle, caller: WalletKey, script: str) -> None:
    role = {MEMBER: "member", GUEST: "guest"}.get(caller, "guest")
    before = roles(circle)
    assert f"role {role} may not change membership; owner or admin needed" in refused(
        circle, caller, script, role
    )
    assert roles(circle) == before


def test_the_role_checked_is_the_one_in_the_database_not_the_one_the_run_was_given(circle: Circle) -> None:
    # MEMBER's connection still believes it is an admin (its cache, a queued job): refused.
    message = refused(circle, MEMBER, f'circle::add_member("{NEW.pubkey}", "member")', role="admin")
    assert "role member may not change membership" in message


def test_nobody_removes_or_adds_the_owner(circle: Circle) -> None:
    assert "the owner cannot be removed" in refused(circle, OWNER, f'circle::remove_member("{OWNER.pubkey}")')
    message = refused(circle, OWNER, f'circle::add_member("{OWNER.pubkey_uncompressed}", "admin")')
    assert "it cannot be added as a member" in message


@pytest.mark.parametrize(
    ("script", "says"),
    [
        (
            'circle::add_member("nonsense", "member")',
            "not a secp256k1 public key in hex nor an Ethereum address",
        ),
        (f'circle::add_member("{NEW.pubkey}", "owner")', "role must be admin, member or guest"),
        (f'circle::add_member("{NEW.pubkey}", 5)', "role must be admin, member or guest"),
        (f'circle::set_role("{NEW.pubkey}", "member")', "is not a member; use circle::add_member"),
        (
            f'circle::add_member("{MEMBER.pubkey}", "admin")',
            "is already a member as member; use circle::set_role",
        ),
        ('circle::update(#{colour: "red"})', "unknown setting 'colour'"),
        ('circle::update(#{allow_guests: "yes"})', "allow_guests must be a bool"),
        ("circle::update(5)", "circle::update takes a map"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(circle: Circle, script: str, says: str) -> None:
    assert says in refused(circle, OWNER, script)


def test_a_run_that_fails_after_a_change_changes_nothing(circle: Circle) -> None:
    outcome = run(circle, OWNER, f'circle::add_member("{NEW.pubkey}", "member"); throw "changed my mind"')
    assert outcome["error"]["kind"] == "throw"
    assert NEW.pubkey not in roles(circle) and not MembershipChange.objects.exists()


def test_changes_are_recorded_with_the_run_and_count_as_writes(circle: Circle) -> None:
    outcome = run(circle, ADMIN, f'circle::add_member("{NEW.pubkey}", "member")')
    change = MembershipChange.objects.get()
    assert (change.action, change.subject, change.new_role) == ("added", NEW.pubkey, "member")
    assert (change.changed_by, change.changed_by_role, change.source) == (ADMIN.pubkey, "admin", "ws")
    assert str(change.run_id) == outcome["run_id"]
    assert AppliedRun.objects.filter(key=f"run:{outcome['run_id']}").exists()  # the exactly-once mark


def test_a_webhook_run_acts_as_an_admin(circle: Circle) -> None:
    assert value(circle, "stripe", f'circle::add_member("{NEW.pubkey}", "member")', role="service") is True
    message = refused(
        circle, "stripe", f'circle::add_member("{WalletKey.named("y").pubkey}", "admin")', "service"
    )
    assert "a webhook run may not add admins" in message
    assert "may not change the circle's settings" in refused(
        circle, "stripe", 'circle::update(#{name: "x"})', "service"
    )
