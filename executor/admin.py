"""Operators' read-only view of script runs."""

from django.contrib import admin
from django.http import HttpRequest

from executor.models import ScriptRun


@admin.register(ScriptRun)
class ScriptRunAdmin(admin.ModelAdmin):
    """Every recorded run: filter by circle, status and source, search by caller or script text."""

    list_display = (
        "id",
        "circle",
        "caller_id",
        "caller_role",
        "source",
        "status",
        "error_kind",
        "elapsed_ms",
        "queued_at",
    )
    list_filter = ("status", "source", "error_kind", "circle")
    search_fields = ("id", "caller_id", "script", "error_message")
    list_select_related = ("circle",)
    date_hierarchy = "queued_at"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "circle",
                    "caller_id",
                    "caller_role",
                    "source",
                    "status",
                    "attempts",
                    "worker",
                )
            },
        ),
        ("Script", {"fields": ("script",)}),
        ("Result", {"fields": ("output", "value", "logs", "operations")}),
        ("Error", {"fields": ("error_kind", "error_message", "error_line", "error_column")}),
        ("Timings", {"fields": ("queued_at", "started_at", "finished_at", "elapsed_ms")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: ScriptRun | None = None) -> list[str]:
        return [field.name for field in ScriptRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ScriptRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ScriptRun | None = None) -> bool:
        return False  # old runs go with `manage.py prune_script_runs`
