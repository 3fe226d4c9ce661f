"""The circle DSL's refusals: size caps, names, arguments. Each is a clear `host` error and writes nothing."""

from importlib import import_module
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from circles.models import ChangeCounter, Circle, Record
from executor.runner import run_job
from tests.helpers.keys import WalletKey
from tests.integration.conftest import make_job

pytestmark = pytest.mark.django_db


def run(circle, script: str, role: str = "member") -> dict:
    return run_job(make_job(circle, script, role=role)).outcome


def refusal(circle, script: str) -> str:
    outcome = run(circle, script)
    assert not outcome["ok"] and outcome["error"]["kind"] == "host", outcome
    return outcome["error"]["message"]


def test_a_value_over_the_record_cap_is_refused(circle, settings) -> None:
    settings.CIRCLES_RECORD_MAX_BYTES = 100
    assert run(circle, 'db::put("c", "small", #{text: "' + "x" * 50 + '"})')["ok"]
    message = refusal(circle, 'db::put("c", "big", #{text: "' + "x" * 200 + '"})')
    assert "over the 100-byte cap" in message
    assert list(Record.objects.values_list("key", flat=True)) == ["small"]


def test_the_circle_cap_counts_what_is_stored_and_frees_on_delete(circle, settings) -> None:
    settings.CIRCLES_CIRCLE_MAX_BYTES = 100
    sixty = '#{t: "' + "x" * 52 + '"}'  # {"t":"xx..."}: 60 bytes as JSON
    assert run(circle, f'db::put("c", "a", {sixty})')["ok"]
    assert "circle storage cap of 100 bytes reached" in refusal(circle, f'db::put("c", "b", {sixty})')
    assert (
        run(circle, f'db::put("c", "a", {sixty})')["result"]["value"] == 2
    )  # replacing a value counts the difference
    assert run(circle, 'db::delete("c", "a")')["result"]["value"] is True
    assert run(circle, f'db::put("c", "b", {sixty})')["ok"]
    assert sorted(Record.objects.values_list("key", "size")) == [("b", 60)]


def stored_bytes(circle) -> tuple[int, int]:
    """The circle's running total and the sum it stands for."""
    total = ChangeCounter.objects.filter(circle=circle).values_list("record_bytes", flat=True).first()
    return total or 0, Record.objects.filter(circle=circle).aggregate(sum=Sum("size"))["sum"] or 0


def test_the_running_total_follows_every_committed_write_and_no_rolled_back_one(circle) -> None:
    steps = [
        'db::put("c", "a", #{t: "1234567890"}); db::put("c", "b", #{t: 1})',
        'db::put("c", "a", #{t: "12"})',  # shrinks
        'db::put("c", "a", #{t: "12345678901234567890"}); db::put("c", "a", #{t: "x"})',  # twice in one run
        'db::delete("c", "b")',
        'db::delete("c", "missing")',
    ]
    for script in steps:
        assert run(circle, script)["ok"], script
        total, summed = stored_bytes(circle)
        assert total == summed > 0, script
    before = stored_bytes(circle)
    assert not run(circle, 'db::put("c", "z", #{t: "a long value that will roll back"}); throw "no"')["ok"]
    assert not run(circle, 'db::delete("c", "a"); throw "no"')["ok"]
    assert stored_bytes(circle) == before


def test_a_growing_put_reads_one_counter_row_not_a_sum_of_the_circle(circle, settings) -> None:
    settings.CIRCLES_CIRCLE_MAX_BYTES = 10_000
    assert run(circle, 'for i in 0..50 { db::put("c", "k" + i, #{i: i}) }')["ok"]
    with CaptureQueriesContext(connection) as queries:
        assert run(circle, 'db::put("c", "new", #{i: 1}); db::put("c", "k1", #{i: "grown"})')["ok"]
    statements = [query["sql"] for query in queries.captured_queries]
    assert not [sql for sql in statements if "SUM(" in sql.upper()], statements
    assert len([sql for sql in statements if "record_bytes" in sql and sql.startswith("SELECT")]) == 1
    total, summed = stored_bytes(circle)
    assert total == summed


def test_the_cap_counts_the_runs_own_uncommitted_writes(circle, settings) -> None:
    settings.CIRCLES_CIRCLE_MAX_BYTES = 100
    sixty = '#{t: "' + "x" * 52 + '"}'
    message = refusal(circle, f'db::put("c", "a", {sixty}); db::put("c", "b", {sixty})')
    assert "circle storage cap of 100 bytes reached" in message
    assert not Record.objects.exists() and stored_bytes(circle) == (0, 0)
    assert run(circle, f'db::put("c", "a", {sixty}); db::delete("c", "a"); db::put("c", "b", {sixty})')["ok"]
    assert stored_bytes(circle) == (60, 60)


def test_the_migration_backfills_the_total_of_records_written_before_it(circle) -> None:
    backfill = import_module("circles.migrations.0005_record_bytes").backfill_record_bytes
    other = Circle.objects.create(public_key=WalletKey.named("dsl-backfill").pubkey, name="other")
    Record.objects.create(circle=circle, collection="c", key="a", data={}, size=40, updated_by="x")
    Record.objects.create(circle=circle, collection="c", key="b", data={}, size=2, updated_by="x")
    Record.objects.create(circle=other, collection="c", key="a", data={}, size=7, updated_by="x")
    ChangeCounter.objects.create(circle=other, last_seq=9)
    backfill(django_apps, SimpleNamespace(connection=connection))
    assert stored_bytes(circle) == (42, 42) and stored_bytes(other) == (7, 7)
    assert ChangeCounter.objects.get(circle=other).last_seq == 9  # the numbering is untouched


@pytest.mark.parametrize(
    ("script", "says"),
    [
        ('db::put("bad name", "k", #{})', "collection must be"),
        ('db::put("c", "", #{})', "key must be"),
        ('db::get("c", "k/../x")', "key must be"),
        ('db::put("' + "c" * 65 + '", "k", #{})', "collection must be"),
        ('db::put("c", "k", [1, 2])', "db::put stores a map"),
        ('db::put("c", "k", #{f: || 1})', "cannot convert a Rhai 'Fn' value"),
        ('db::put("c", "k", #{x: 1.0 / 0.0})', "cannot store this value: inf has no JSON form"),
        ('db::list("c", 0)', "limit must be between 1 and"),
        ('db::list("c", 100000)', "limit must be between 1 and"),
        ('db::list("c", 10, 5)', "prefix must be a string"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(circle, script: str, says: str) -> None:
    assert says in refusal(circle, script)
    assert not Record.objects.exists()


def test_a_refusal_cannot_be_caught_and_undoes_the_run(circle) -> None:
    script = 'db::put("c", "first", #{a: 1}); try { db::put("bad name", "k", #{}) } catch { 0 }'
    assert "collection must be" in refusal(circle, script)
    assert not Record.objects.exists()


def test_list_filters_by_prefix_in_key_order_up_to_the_limit(circle) -> None:
    for key in ("b2", "a1", "b1", "b3"):
        assert run(circle, f'db::put("c", "{key}", #{{k: "{key}"}})')["ok"]
    assert run(circle, 'db::list("c", 2, "b").map(|r| r.key)')["result"]["value"] == ["b1", "b2"]
    item = run(circle, 'db::list("c", 1)')["result"]["value"][0]
    assert item == {"key": "a1", "data": {"k": "a1"}, "version": 1, "updated_by": item["updated_by"]}


def test_a_rewrite_bumps_the_version_and_the_time_and_keeps_one_row(circle) -> None:
    assert run(circle, 'db::put("c", "k", #{n: 1})')["result"]["value"] == 1
    first = Record.objects.get(key="k")
    assert run(circle, 'db::put("c", "k", #{n: 2})')["result"]["value"] == 2
    assert run(circle, 'db::put("c", "k", #{n: 3}); db::put("c", "k", #{n: 4})')["result"]["value"] == 4
    second = Record.objects.get(key="k")
    assert (second.version, second.data, second.size) == (4, {"n": 4}, len('{"n":4}'))
    assert second.updated_at > first.updated_at
