"""NUL characters in JSON text: found and replaced only where they are characters, not text."""

import orjson
import pytest

from executor.json_nul import has_nul, without_nul


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\x00b", "a\ufffdb"),
        ("\x00\x00", "\ufffd\ufffd"),
        ("\\u0000", "\\u0000"),  # a backslash and the text "u0000": no NUL
        ("\\\x00", "\\\ufffd"),  # a backslash, then a NUL
        ({"k\x00": ["x", "\x00"]}, {"k\ufffd": ["x", "\ufffd"]}),
        ("plain", "plain"),
    ],
)
def test_each_nul_character_and_only_those_becomes_a_replacement(value, expected) -> None:
    document = orjson.dumps(value).decode()
    assert has_nul(document) == (value != expected)
    assert orjson.loads(without_nul(document)) == expected
