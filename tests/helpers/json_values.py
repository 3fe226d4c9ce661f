"""Hypothesis strategy for JSON-like values a script can hold: what crosses the binding both ways
and what the server's conversion (executor/values.py) keeps as it is."""

from hypothesis import strategies as st

I64_MIN, I64_MAX = -(2**63), 2**63 - 1  # Rhai's INT

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=I64_MIN, max_value=I64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=20,
)
