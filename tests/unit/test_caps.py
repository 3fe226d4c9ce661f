"""What a run may send back and what its row keeps (executor/caps.py)."""

import orjson
import pytest

from executor.caps import LOGS_TRUNCATED, ResultTooLarge, check_answer, cut_logs, cut_text, cut_value


def test_an_answer_within_the_cap_passes():
    check_answer("x" * 100, {"a": "y" * 80}, max_bytes=100)


def test_an_output_past_the_cap_is_refused_also_when_counted_in_utf8_bytes():
    with pytest.raises(ResultTooLarge, match="output"):
        check_answer("x" * 101, None, max_bytes=100)
    with pytest.raises(ResultTooLarge, match="output"):
        check_answer("é" * 51, None, max_bytes=100)  # 51 characters, 102 bytes


def test_a_value_past_the_cap_as_json_is_refused_with_its_size():
    value = {"k": "v" * 100}
    with pytest.raises(ResultTooLarge, match=f"{len(orjson.dumps(value))} bytes"):
        check_answer("", value, max_bytes=100)


def test_text_is_kept_whole_or_cut_on_a_character_boundary_with_a_marker():
    assert cut_text("short", 10) == "short"
    cut = cut_text("ab" + "é" * 10, 5)  # the cut falls inside an é
    assert cut.startswith("abé") and "é" * 2 not in cut[:4]
    assert cut.endswith("[truncated: 22 bytes in all]")


def test_a_value_too_big_to_keep_becomes_a_marker_with_its_head():
    assert cut_value({"a": 1}, 100) == {"a": 1}
    assert cut_value(None, 1) is None
    kept = cut_value(["x" * 50] * 10, 64)
    assert kept["truncated"] is True
    assert kept["bytes"] == len(orjson.dumps(["x" * 50] * 10))
    assert len(kept["head"]) == 64 and kept["head"].startswith('["xxx')


def test_logs_keep_the_lines_that_fit_then_a_marker():
    assert cut_logs(["a", "b"], 10) == ["a", "b"]
    kept = cut_logs(["12345", "67890", "abcde"], 8)
    assert kept == ["12345", "678", LOGS_TRUNCATED.format(size=15)]
