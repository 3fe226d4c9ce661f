"""executor.values: the one conversion of a script's value to the JSON the server answers.

The rules are docs/SCRIPTING.md's: NaN and infinities have no JSON form (the run fails), a blob
becomes base64 text, lists and maps keep their shape, nesting is capped.
"""

import math

import pytest
from hypothesis import given, settings

from executor.values import MAX_DEPTH, NotJsonSafe, to_json
from tests.helpers.json_values import json_values


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, -math.inf], {"a": {"b": math.nan}}])
def test_nan_and_infinities_have_no_json_form(value):
    with pytest.raises(NotJsonSafe, match="no JSON form"):
        to_json(value)


def test_json_values_are_kept():
    value = {"a": [1, 2.5, "x", None, True], "b": {}}
    assert to_json(value) == value


def test_a_blob_becomes_base64_text():
    assert to_json(b"AAA") == "QUFB"
    assert to_json({"blob": [b"\x00\xff"]}) == {"blob": ["AP8="]}


def test_nesting_deeper_than_the_cap_is_refused():
    value: list = []
    for _ in range(MAX_DEPTH):
        value = [value]
    assert to_json(value) == value
    with pytest.raises(NotJsonSafe, match="deeper"):
        to_json([value])


def test_other_types_have_no_json_form():
    with pytest.raises(NotJsonSafe, match="set has no JSON form"):
        to_json({1, 2})


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_every_json_value_is_its_own_json_form(value):
    assert to_json(value) == value
