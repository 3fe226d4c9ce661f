"""The scripts behind the membership commands: `circle::` calls with their arguments quoted for Rhai.

Membership has no method of its own on the wire: the client runs these with `play`, as any
script, so the server's rules for `circle::add_member` and the others apply unchanged.
"""

MEMBERS = "circle::members()"
INFO = "circle::info()"


def rhai_string(text: str) -> str:
    """`text` as a Rhai string literal: quotes and backslashes escaped, control characters as \\xHH."""
    out = ['"']
    for char in text:
        if char in '\\"':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def add_member(key: str, role: str = "member", name: str | None = None) -> str:
    """`circle::add_member(key, role[, name])`: true when added, false when it had that role already."""
    args = [rhai_string(key), rhai_string(role)] + ([rhai_string(name)] if name else [])
    return f"circle::add_member({', '.join(args)})"


def set_role(key: str, role: str) -> str:
    """`circle::set_role(key, role)`: true when the role changed."""
    return f"circle::set_role({rhai_string(key)}, {rhai_string(role)})"


def remove_member(key: str) -> str:
    """`circle::remove_member(key)`: true when it was a member."""
    return f"circle::remove_member({rhai_string(key)})"


def update(
    *, name: str | None = None, description: str | None = None, allow_guests: bool | None = None
) -> str:
    """`circle::update(#{...})` with the settings given; returns field -> [old, new] when run."""
    fields = []
    if name is not None:
        fields.append(f"name: {rhai_string(name)}")
    if description is not None:
        fields.append(f"description: {rhai_string(description)}")
    if allow_guests is not None:
        fields.append(f"allow_guests: {'true' if allow_guests else 'false'}")
    if not fields:
        raise ValueError("nothing to update: give a name, a description or allow_guests")
    return f"circle::update(#{{{', '.join(fields)}}})"
