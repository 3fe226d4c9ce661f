"""Operators' view of circles and their members."""

from django.contrib import admin
from django.db.models import Count

from circles.models import Circle, Member, Record


class MemberInline(admin.TabularInline):
    """Members edited on their circle's page."""

    model = Member
    extra = 0
    fields = ("public_key", "role", "display_name", "added_at")
    readonly_fields = ("added_at",)


@admin.register(Circle)
class CircleAdmin(admin.ModelAdmin):
    """Circles with their members inline."""

    list_display = ("name", "public_key", "is_active", "allow_guests", "member_count", "created_at")
    list_filter = ("is_active", "allow_guests", "created_at")
    search_fields = ("name", "public_key", "description")
    readonly_fields = ("created_at",)
    inlines = [MemberInline]

    def get_queryset(self, request):
        """Circles with their member count, counted in the list's one query (not one per row)."""
        return super().get_queryset(request).annotate(member_total=Count("members"))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, circle: Circle) -> int:
        return circle.member_total


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    """Every membership across circles."""

    list_display = ("public_key", "role", "display_name", "circle", "added_at")
    list_filter = ("role", "circle")
    search_fields = ("public_key", "display_name", "circle__name", "circle__public_key")
    list_select_related = ("circle",)


@admin.register(Record)
class RecordAdmin(admin.ModelAdmin):
    """Circle data as scripts wrote it (read-only: scripts own it)."""

    list_display = ("collection", "key", "circle", "version", "size", "updated_by", "updated_at")
    list_filter = ("collection", "circle")
    search_fields = ("key", "collection", "updated_by", "circle__public_key", "circle__name")
    list_select_related = ("circle",)
    readonly_fields = ("circle", "collection", "key", "data", "size", "version", "updated_by", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False
