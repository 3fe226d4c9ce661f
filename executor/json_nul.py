"""NUL characters in JSON text: PostgreSQL's text and jsonb cannot hold them (`\\u0000`).

A script can make strings with NUL in them (`"\\x00"`). Stored as they are on PostgreSQL, they
fail the statement, and with it everything else in its transaction or batch. Callers either
refuse them with a clear error (`db::put`) or store U+FFFD instead (run rows, the answer a
written run keeps for a later delivery).
"""

import re

# A JSON `\u0000` escape, i.e. one preceded by an even number of backslashes (`\\u0000` is an
# escaped backslash followed by the text "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def has_nul(document: str) -> bool:
    """Whether the JSON `document` has a NUL character in one of its strings."""
    return "\\u0000" in document and _NUL_ESCAPE.search(document) is not None


def without_nul(document: str) -> str:
    """The JSON `document` with each NUL character in its strings made U+FFFD (`document`
    itself, the same object, when it has no `\\u0000` at all)."""
    if "\\u0000" not in document:
        return document
    return _NUL_ESCAPE.sub(lambda match: match.group(1) + "\\ufffd", document)
