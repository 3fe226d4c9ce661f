"""Strict hex decoding shared by the key and signature parsers."""

from __future__ import annotations

import re

# bytes.fromhex() tolerates whitespace and int(x, 16) tolerates "_" and non-ASCII digits;
# client input must be exactly [0x]<hex digits>, so validate with an explicit ASCII class.
_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]*)")


def decode_hex(text: object) -> bytes | None:
    """Decode ``text`` (optional ``0x``/``0X`` prefix, any case) or return None if it is not strict hex."""
    if not isinstance(text, str):
        return None
    match = _HEX.fullmatch(text)
    if match is None:
        return None
    digits = match.group(1)
    if len(digits) % 2:
        return None
    return bytes.fromhex(digits)
