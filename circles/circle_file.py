"""Reading a file of circles (`manage.py load_circles`): JSON or TOML, checked whole before any use.

    [[circles]]
    name = "alpha"                     # required; names a circle without a pubkey across loads
    pubkey = "02ab…"                   # optional: without it a key pair is made on creation
    description = "…"                  # optional
    allow_guests = false               # optional (false)
    active = true                      # optional (true)
    init = "alpha.rhai"                # optional: a script file (relative to this file), or
    # init_script = 'db::put(…)'       #   the script itself; run once, as the owner, on creation
    members = [{ key = "02…" , role = "admin", name = "Ann" }, { key = "0xAbC…", role = "member" }]

JSON takes the same entries as `{"circles": [...]}` or as a bare list. Every problem is a
`CircleFileError` naming the entry (`circle 2 ("beta")`) and the field.
"""

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auth_secp import InvalidPublicKey, canonical_public_key
from circles.membership_rules import GRANTABLE
from circles.subjects import Subject, address_of, parse_subject

ENTRY_FIELDS = {"name", "pubkey", "description", "allow_guests", "active", "init", "init_script", "members"}
MEMBER_FIELDS = {"key", "role", "name"}
NAME_MAX = 200


class CircleFileError(ValueError):
    """The file cannot be loaded; the message names the file, the entry and the field."""


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """One member of a circle as the file declares it."""

    subject: Subject
    role: str
    name: str


@dataclass(frozen=True, slots=True)
class CircleSpec:
    """One circle as the file declares it."""

    label: str  # how messages name it: circle N ("name")
    name: str
    pubkey: str | None
    description: str | None  # None: not given, left as it is
    allow_guests: bool | None
    active: bool | None
    init: str | None  # the init script's source
    members: tuple[MemberSpec, ...] | None  # None: no `members` key, membership left alone


def read_circle_file(path: str | Path) -> list[CircleSpec]:
    """Parse and check the whole file; CircleFileError on the first problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CircleFileError(f"{path}: cannot read it: {exc.strerror}") from exc
    data = _parse(path, raw)
    entries = data.get("circles") if isinstance(data, dict) else data
    if isinstance(data, dict) and set(data) - {"circles"}:
        raise CircleFileError(f"{path}: unknown top-level key {sorted(set(data) - {'circles'})[0]!r}")
    if not isinstance(entries, list) or not entries:
        raise CircleFileError(f"{path}: expected a non-empty list of circles (`circles`)")
    specs = [_entry(path, index, entry) for index, entry in enumerate(entries, start=1)]
    _check_unique(path, specs)
    return specs


def _parse(path: Path, raw: bytes) -> Any:
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            return tomllib.loads(raw.decode())
        if suffix == ".json":
            return json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CircleFileError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from exc
    raise CircleFileError(f"{path}: the file must end in .json or .toml")


def _entry(path: Path, index: int, entry: Any) -> CircleSpec:
    label = f"circle {index}"
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        label = f'circle {index} ("{entry["name"]}")'

    def fail(message: str) -> CircleFileError:
        return CircleFileError(f"{path}: {label}: {message}")

    if not isinstance(entry, dict):
        raise fail("each circle is a table/object")
    unknown = sorted(set(entry) - ENTRY_FIELDS)
    if unknown:
        raise fail(f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(ENTRY_FIELDS))})")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise fail(f"name is required: a string of 1-{NAME_MAX} characters")
    pubkey = entry.get("pubkey")
    if pubkey is not None:
        try:
            pubkey = canonical_public_key(pubkey) if isinstance(pubkey, str) else _bad(pubkey)
        except (InvalidPublicKey, TypeError) as exc:
            raise fail(f"pubkey: {exc}") from exc
    for field, kind in (("description", str), ("allow_guests", bool), ("active", bool)):
        if field in entry and not isinstance(entry[field], kind):
            raise fail(f"{field} must be a {'string' if kind is str else 'boolean'}")
    return CircleSpec(
        label=label,
        name=name,
        pubkey=pubkey,
        description=entry.get("description"),
        allow_guests=entry.get("allow_guests"),
        active=entry.get("active"),
        init=_init(path, entry, fail),
        members=_members(entry, pubkey, fail),
    )


def _bad(value: Any) -> str:
    raise TypeError(f"must be a string, not {type(value).__name__}")


def _init(path: Path, entry: dict[str, Any], fail: Callable[[str], CircleFileError]) -> str | None:
    if "init" in entry and "init_script" in entry:
        raise fail("give init (a file) or init_script (the script), not both")
    if "init_script" in entry:
        if not isinstance(entry["init_script"], str) or not entry["init_script"].strip():
            raise fail("init_script must be a non-empty string")
        return entry["init_script"]
    if "init" not in entry:
        return None
    if not isinstance(entry["init"], str):
        raise fail("init must be the path of a script file")
    script = path.parent / entry["init"]
    try:
        return script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"init: cannot read {script}: {getattr(exc, 'strerror', None) or exc}") from exc


def _members(
    entry: dict[str, Any], pubkey: str | None, fail: Callable[[str], CircleFileError]
) -> tuple[MemberSpec, ...] | None:
    if "members" not in entry:
        return None
    members = entry["members"]
    if not isinstance(members, list):
        raise fail("members must be a list of {key, role, name}")
    specs: list[MemberSpec] = []
    seen: set[str] = set()
    for number, member in enumerate(members, start=1):
        where = f"members[{number}]"
        if not isinstance(member, dict):
            raise fail(f"{where}: each member is a table/object {{key, role, name}}")
        unknown = sorted(set(member) - MEMBER_FIELDS)
        if unknown:
            raise fail(f"{where}: unknown field {unknown[0]!r} (fields: key, role, name)")
        try:
            subject = parse_subject(member.get("key"))
        except ValueError as exc:
            raise fail(f"{where}: key: {exc}") from exc
        role = member.get("role", "member")
        if role not in GRANTABLE:
            raise fail(f"{where}: role must be admin, member or guest, not {role!r}")
        name = member.get("name", "")
        if not isinstance(name, str) or len(name) > NAME_MAX:
            raise fail(f"{where}: name must be a string of at most {NAME_MAX} characters")
        if subject.address in seen:
            raise fail(f"{where}: {subject.shown} is listed twice")
        if pubkey is not None and subject.address == address_of(pubkey):
            raise fail(f"{where}: the circle's own key is its owner, not a member")
        seen.add(subject.address)
        specs.append(MemberSpec(subject, role, name))
    return tuple(specs)


def _check_unique(path: Path, specs: list[CircleSpec]) -> None:
    keys: dict[str, str] = {}
    names: dict[str, str] = {}
    for spec in specs:
        if spec.pubkey is not None:
            if spec.pubkey in keys:
                raise CircleFileError(f"{path}: {spec.label}: same pubkey as {keys[spec.pubkey]}")
            keys[spec.pubkey] = spec.label
        if spec.name in names:
            raise CircleFileError(f"{path}: {spec.label}: same name as {names[spec.name]}")
        names[spec.name] = spec.label
