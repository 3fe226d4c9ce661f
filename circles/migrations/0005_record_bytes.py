"""The bytes a circle's records take, kept as a running total on its counter row.

Before, the storage cap's check summed every record of the circle on each growing `db::put`
(linear in the circle's size). The backfill gives every circle that has records a counter row
holding their sum; from then on every committed write adds its difference.
"""

from typing import Any

from django.db import migrations, models
from django.db.models import Sum


def backfill_record_bytes(apps: Any, schema_editor: Any) -> None:
    Record = apps.get_model("circles", "Record")
    ChangeCounter = apps.get_model("circles", "ChangeCounter")
    using = schema_editor.connection.alias
    totals = Record.objects.using(using).values_list("circle_id").annotate(total=Sum("size"))
    for circle_id, total in totals:
        ChangeCounter.objects.using(using).update_or_create(
            circle_id=circle_id, defaults={"record_bytes": total or 0}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("circles", "0004_change_log"),
    ]

    operations = [
        migrations.AddField(
            model_name="changecounter",
            name="record_bytes",
            field=models.BigIntegerField(
                default=0,
                help_text="The sum of its records' sizes, kept by every committed write (the storage cap).",
            ),
        ),
        migrations.RunPython(backfill_record_bytes, migrations.RunPython.noop),
    ]
