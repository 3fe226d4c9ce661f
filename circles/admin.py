"""Operators' view of circles, their members, who changed membership when (from which run), their
records and the change log of those records."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet, Subquery
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from circles import membership
from circles.changes import PendingChange
from circles.models import Circle, Member, MembershipChange, Record, RecordChange
from circles.record_rows import delete_record_by_id
from executor.change_commit import commit_changes
from executor.models import ScriptRun

ADMIN_SOURCE = "admin"  # the source of changes an operator made in the admin
# The admin views that delete whole circles: the delete page and the list's delete action.
CIRCLE_DELETE_VIEWS = frozenset({"circles_circle_delete", "circles_circle_changelist"})


def deleting_circles(request: HttpRequest) -> bool:
    """Whether `request` is an operator deleting whole circles, whose logs must go with them.

    The logs (membership changes, record changes) are never deleted on their own, but Django's
    cascade asks each related row's admin for delete permission: refused everywhere, no circle
    that has a log could be deleted at all.
    """
    match = request.resolver_match
    return match is not None and match.url_name in CIRCLE_DELETE_VIEWS


def _operator(request: HttpRequest) -> membership.Actor:
    name = f"admin:{request.user.get_username()}"
    return membership.Actor(caller_id=name, caller_role="operator", source="admin")


def record_member_edit(
    request: HttpRequest, member: Member, old_role: str | None, *, removed: bool = False
) -> None:
    """Record an operator's edit of a Member row (added, role changed, removed) and announce it."""
    subject = member.public_key or member.address
    actor = _operator(request)
    if removed:
        membership.record_change(
            member.circle, actor, MembershipChange.Action.REMOVED, subject, old_role=member.role
        )
    elif old_role is None:
        membership.record_change(
            member.circle, actor, MembershipChange.Action.ADDED, subject, new_role=member.role
        )
    elif old_role != member.role:
        membership.record_change(
            member.circle,
            actor,
            MembershipChange.Action.ROLE,
            subject,
            old_role=old_role,
            new_role=member.role,
        )


class MemberInline(admin.TabularInline):
    """Members edited on their circle's page."""

    model = Member
    extra = 0
    fields = ("public_key", "address", "role", "display_name", "added_at")
    readonly_fields = ("added_at",)


class ChangeInline(admin.TabularInline):
    """The circle's latest membership changes, read-only."""

    model = MembershipChange
    extra = 0
    max_num = 0
    can_delete = False
    fields = (
        "at",
        "action",
        "subject",
        "old_role",
        "new_role",
        "changed_by",
        "changed_by_role",
        "source",
        "run",
    )
    readonly_fields = fields
    ordering = ("-at", "-id")
    verbose_name_plural = "membership changes (all of them: Membership changes)"

    @admin.display(description="run")
    def run(self, change: MembershipChange) -> str:
        return run_link(change)

    def get_queryset(self, request: HttpRequest) -> QuerySet[MembershipChange]:
        """Only the latest 20 (the whole trail is under Membership changes)."""
        latest = MembershipChange.objects.filter(circle=OuterRef("circle")).order_by("-at", "-id")
        return with_run_kept(super().get_queryset(request).filter(id__in=Subquery(latest.values("id")[:20])))


def with_run_kept(queryset: QuerySet[MembershipChange]) -> QuerySet[MembershipChange]:
    """Changes with `run_kept`: whether their run's ScriptRun row exists (one query for the page)."""
    return queryset.annotate(run_kept=Exists(ScriptRun.objects.filter(id=OuterRef("run_id"))))


def run_link(change: MembershipChange) -> str:
    """A link to the ScriptRun that made a change (when the recording policy kept it), else its id."""
    if change.run_id is None:
        return "—"
    if getattr(change, "run_kept", False):
        try:
            url = reverse("admin:executor_scriptrun_change", args=[change.run_id])
        except NoReverseMatch:
            return str(change.run_id)
        return format_html('<a href="{}">{}</a>', url, change.run_id)
    return str(change.run_id)


@admin.register(Circle)
class CircleAdmin(admin.ModelAdmin):
    """Circles with their members and latest membership changes inline."""

    list_display = ("name", "public_key", "is_active", "allow_guests", "member_count", "created_at")
    list_filter = ("is_active", "allow_guests", "created_at")
    search_fields = ("name", "public_key", "description")
    readonly_fields = ("created_at",)
    inlines = [MemberInline, ChangeInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Circle]:
        """Circles with their member count, counted in the list's one query (not one per row)."""
        return super().get_queryset(request).annotate(member_total=Count("members"))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, circle: Circle) -> int:
        return getattr(circle, "member_total", 0)  # annotated by get_queryset

    def save_formset(
        self,
        request: HttpRequest,
        form: ModelForm[Circle],
        formset: BaseInlineFormSet[Any, Circle, Any],
        change: bool,
    ) -> None:
        """Save the members inline, recording each addition, role change and removal."""
        if formset.model is not Member:
            super().save_formset(request, form, formset, change)
            return
        old_roles = {m.id: m.role for m in Member.objects.filter(circle=form.instance)}
        deleted = [f.instance for f in formset.deleted_forms if f.instance.pk]
        formset.save()
        for member in deleted:
            record_member_edit(request, member, member.role, removed=True)
        for member in formset.new_objects:
            record_member_edit(request, member, None)
        for member, _ in formset.changed_objects:
            record_member_edit(request, member, old_roles.get(member.id))


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    """Every membership across circles, with who last changed it and when."""

    list_display = ("public_key", "address", "role", "display_name", "circle", "added_at", "last_change")
    list_filter = ("role", "circle")
    search_fields = ("public_key", "address", "display_name", "circle__name", "circle__public_key")
    list_select_related = ("circle",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Member]:
        """Members with their latest change (by, when), in the list's one query."""
        latest = MembershipChange.objects.filter(
            circle=OuterRef("circle"), subject__in=[OuterRef("public_key"), OuterRef("address")]
        ).order_by("-at", "-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                changed_by=Subquery(latest.values("changed_by")[:1]),
                changed_at=Subquery(latest.values("at")[:1]),
            )
        )

    @admin.display(description="last change", ordering="changed_at")
    def last_change(self, member: Member) -> str:
        # Both annotated by get_queryset.
        changed_at, changed_by = getattr(member, "changed_at", None), getattr(member, "changed_by", "")
        if not changed_at:
            return "—"
        return f"{changed_at:%Y-%m-%d %H:%M} by {changed_by[:20]}"

    def save_model(self, request: HttpRequest, obj: Member, form: ModelForm[Member], change: bool) -> None:
        """Save and record the edit."""
        old_role = Member.objects.filter(id=obj.id).values_list("role", flat=True).first() if change else None
        super().save_model(request, obj, form, change)
        record_member_edit(request, obj, old_role)

    def delete_model(self, request: HttpRequest, obj: Member) -> None:
        """Delete and record the removal."""
        super().delete_model(request, obj)
        record_member_edit(request, obj, obj.role, removed=True)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Member]) -> None:
        """Bulk delete from the list, each removal recorded."""
        for member in list(queryset.select_related("circle")):
            self.delete_model(request, member)


@admin.register(MembershipChange)
class MembershipChangeAdmin(admin.ModelAdmin):
    """Who changed which circle's membership or settings, when, and through which run (read-only)."""

    list_display = (
        "at",
        "circle",
        "action",
        "subject",
        "roles",
        "changed_by",
        "changed_by_role",
        "source",
        "run",
    )
    list_filter = ("action", "source", "changed_by_role", "circle")
    search_fields = ("subject", "changed_by", "circle__name", "circle__public_key", "run_id")
    list_select_related = ("circle",)
    date_hierarchy = "at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[MembershipChange]:
        """Changes with whether their run's row was kept, in the list's one query."""
        return with_run_kept(super().get_queryset(request))

    @admin.display(description="role")
    def roles(self, change: MembershipChange) -> str:
        if change.action == MembershipChange.Action.SETTINGS:
            return ", ".join(f"{k}: {old!r} → {new!r}" for k, (old, new) in change.details.items())
        return f"{change.old_role or '—'} → {change.new_role or '—'}"

    @admin.display(description="run")
    def run(self, change: MembershipChange) -> str:
        return run_link(change)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: MembershipChange | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: MembershipChange | None = None) -> bool:
        return deleting_circles(request)


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    """Circle data as scripts wrote it: view-only (scripts own it), but an operator may delete.

    Each deletion is a change of the circle's log (source `admin`, by `admin:<username>`),
    numbered in the deleting transaction and published to the circle's watchers after it, as a
    script's `db::delete` is.
    """

    list_display = ("collection", "key", "circle", "version", "size", "updated_by", "updated_at")
    list_filter = ("collection", "circle")
    search_fields = ("key", "collection", "updated_by", "circle__public_key", "circle__name")
    list_select_related = ("circle",)
    readonly_fields = ("circle", "collection", "key", "data", "size", "version", "updated_by", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Record | None = None) -> bool:
        return False  # an edit would bypass the scripts' rules (caps, versions); view and delete only

    def delete_model(self, request: HttpRequest, obj: Record) -> None:
        """Delete one record, and log the deletion as a change of its circle."""
        delete_records(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Record]) -> None:
        """Delete the selected records, each deletion a change of its circle."""
        delete_records(request, list(queryset))


def delete_records(request: HttpRequest, records: list[Record]) -> None:
    """Delete `records` in one transaction, with a change per record actually deleted (one that a
    script deleted meanwhile is not deleted twice), published after the commit."""
    by = f"admin:{request.user.get_username()}"[:120]
    with transaction.atomic():
        pending: dict[int, list[PendingChange]] = {}
        for record in records:
            freed = delete_record_by_id(record.id)
            if freed is not None:
                change = PendingChange(
                    record.collection, record.key, RecordChange.Op.DELETE, 0, None, by, ADMIN_SOURCE, -freed
                )
                pending.setdefault(record.circle_id, []).append(change)
        for circle_id, changes in sorted(pending.items()):  # one order: two operators never deadlock
            commit_changes(circle_id, changes)


@admin.register(RecordChange)
class RecordChangeAdmin(admin.ModelAdmin):
    """The change log of circles' records (read-only; `manage.py prune_changes` trims it)."""

    list_display = (
        "seq",
        "circle",
        "op",
        "collection",
        "key",
        "version",
        "source",
        "updated_by",
        "updated_at",
    )
    list_filter = ("op", "source", "collection", "circle")
    search_fields = ("key", "collection", "updated_by", "circle__public_key", "circle__name")
    list_select_related = ("circle",)
    date_hierarchy = "updated_at"
    ordering = ("-updated_at", "-id")

    def get_readonly_fields(self, request: HttpRequest, obj: RecordChange | None = None) -> list[str]:
        return [field.name for field in RecordChange._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: RecordChange | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: RecordChange | None = None) -> bool:
        return deleting_circles(request)
