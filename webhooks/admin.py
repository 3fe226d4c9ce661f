"""Operators' view of webhooks: endpoints (secret write-only, shown masked) and every event received."""

import json
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from webhooks import processing
from webhooks.models import WebhookEndpoint, WebhookEvent
from webhooks.providers import registry


class WebhookEndpointForm(forms.ModelForm):
    """The secret is typed in but never shown back: left blank on change it keeps the stored one."""

    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave blank to keep the current secret (or, for a new endpoint, to use "
        "the provider's secret from the environment).",
    )
    clear_secret = forms.BooleanField(
        required=False, help_text="Forget the stored secret and use the environment's."
    )
    provider = forms.ChoiceField(choices=())

    class Meta:
        model = WebhookEndpoint
        fields = ("circle", "provider", "secret", "clear_secret", "enabled", "script")
        widgets = {
            "script": forms.Textarea(attrs={"rows": 20, "cols": 100, "style": "font-family: monospace"})
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["provider"]).choices = [(name, name) for name in registry()]

    def clean_secret(self) -> str:
        """Blank keeps the stored secret; `clear_secret` empties it."""
        secret = self.cleaned_data.get("secret") or ""
        if not secret and self.instance.pk:
            return self.instance.secret
        return secret

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("clear_secret"):
            cleaned["secret"] = ""
            self.instance.secret = ""
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """A circle's secret and handler script per provider."""

    form = WebhookEndpointForm
    list_display = ("circle", "provider", "enabled", "masked_secret", "custom_script", "created")
    list_filter = ("provider", "enabled")
    search_fields = ("circle__public_key", "circle__name")
    readonly_fields = ("masked_secret", "created")

    @admin.display(boolean=True, description="own script")
    def custom_script(self, obj: WebhookEndpoint) -> bool:
        return bool(obj.script.strip())


def _pretty(value: Any) -> str:
    return format_html("<pre class='webhooks-json'>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Every delivery: filter by provider, status and circle, search by event id or type; reprocess."""

    list_display = (
        "received_at",
        "provider",
        "circle",
        "event_type",
        "event_id",
        "status",
        "http_status",
        "signature_valid",
        "attempts",
    )
    list_filter = ("status", "provider", "signature_valid", "event_type", "circle")
    search_fields = ("event_id", "event_type", "error", "remote_addr")
    list_select_related = ("circle",)
    date_hierarchy = "received_at"
    actions = ("reprocess",)

    class Media:
        css = {"all": ("webhooks/admin.css",)}  # the JSON fields' wrapping (inline styles break the CSP)

    fieldsets = (
        (
            None,
            {
                "fields": (
                    "provider",
                    "circle",
                    "event_id",
                    "event_type",
                    "status",
                    "http_status",
                    "signature_valid",
                    "received_at",
                    "remote_addr",
                )
            },
        ),
        ("Processing", {"fields": ("attempts", "next_attempt_at", "processed_at", "run_id", "script_run")}),
        ("Error", {"fields": ("error", "traceback")}),
        ("Request", {"fields": ("pretty_headers", "body_size", "body")}),
        ("Payload (EVENT)", {"fields": ("pretty_payload",)}),
    )

    @admin.display(description="headers")
    def pretty_headers(self, obj: WebhookEvent) -> str:
        return _pretty(obj.headers)

    @admin.display(description="EVENT")
    def pretty_payload(self, obj: WebhookEvent) -> str:
        return _pretty(obj.payload)

    def get_readonly_fields(self, request: HttpRequest, obj: WebhookEvent | None = None) -> list[str]:
        return [field.name for field in WebhookEvent._meta.fields] + ["pretty_headers", "pretty_payload"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: WebhookEvent | None = None) -> bool:
        return False  # read-only; the reprocess action is the one way to act on an event

    @admin.action(description="Reprocess selected events (run the handler again)", permissions=["view"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        """Run the selected events' handler again now (rejected and duplicate rows are skipped)."""
        queued, waiting = processing.reprocess(queryset.values_list("id", flat=True))
        self.message_user(request, f"{queued} events queued again.", messages.SUCCESS)
        if waiting:
            self.message_user(
                request,
                f"{waiting} events could not be queued now; the sweep will queue them.",
                messages.WARNING,
            )
