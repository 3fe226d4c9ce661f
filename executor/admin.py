"""Operators' read-only view of script runs, and of jobs (with stop and delete)."""

import contextlib

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from executor import job_store
from executor.job_dispatch import interrupt, settle
from executor.job_rules import ACTIVE, FINAL, JobError
from executor.job_store import Viewer
from executor.models import JobRecord, ScriptRun


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


@admin.register(JobRecord)
class JobRecordAdmin(admin.ModelAdmin):
    """Jobs, read-only: filter by circle, caller and status; stop or delete them."""

    list_display = ("id", "circle", "caller_id", "status", "created_at", "finished_at", "elapsed_ms")
    list_filter = ("status", "circle", "caller_id")
    search_fields = ("id", "caller_id", "script")
    list_select_related = ("circle",)
    actions = ("stop_jobs",)

    def get_readonly_fields(self, request: HttpRequest, obj: JobRecord | None = None) -> list[str]:
        return [field.name for field in JobRecord._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JobRecord | None = None) -> bool:
        return False

    @admin.action(description="Stop the selected jobs")
    def stop_jobs(self, request: HttpRequest, queryset: QuerySet[JobRecord]) -> None:
        stopped = 0
        for record in queryset.exclude(status__in=FINAL).select_related("circle"):
            viewer = Viewer(record.circle_id, record.caller_id, record.caller_role, sees_all=True)
            with contextlib.suppress(JobError):
                result = job_store.stop(viewer, str(record.id))
                if result.run_id is not None:
                    interrupt(result.run_id)
                settle(result.change)
                stopped += 1
        self.message_user(request, f"stopped {stopped} jobs")

    def has_delete_permission(self, request: HttpRequest, obj: JobRecord | None = None) -> bool:
        """A dispatched or started job is stopped first, as `delete_job` requires."""
        return super().has_delete_permission(request, obj) and (obj is None or obj.status not in ACTIVE)

    def delete_model(self, request: HttpRequest, obj: JobRecord) -> None:
        """As `delete_job`: refused while it runs, and the jobs waiting on it are released."""
        self.delete_queryset(request, JobRecord.objects.filter(id=obj.id))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[JobRecord]) -> None:
        """Delete the selected jobs that are not dispatched or started; the others are left (and said)."""
        kept = 0
        for record in queryset.select_related("circle"):
            viewer = Viewer(record.circle_id, record.caller_id, record.caller_role, sees_all=True)
            try:
                settle(job_store.delete(viewer, str(record.id)))
            except JobError:
                kept += 1
        if kept:
            self.message_user(request, f"{kept} running jobs were not deleted: stop them first")
