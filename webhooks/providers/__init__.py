"""The provider registry: one module per provider, each exposing `PROVIDER` (a `Provider`).

A provider knows three things: how to verify a request (`verify`, raising InvalidSignature),
how to parse its body into the typed payload scripts see as `EVENT` (`parse`, raising
MalformedEvent), and which event id and type the payload carries. Adding a provider is one
new module named in the `CIRCLES_WEBHOOK_PROVIDERS` setting. Pure logic: no database here.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any

from django.conf import settings

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


class InvalidSignature(Exception):
    """The request is not signed with the endpoint's secret (the reason is for the log only)."""


class MalformedEvent(Exception):
    """The body is signed but is not an event this provider sends."""


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """What a verified body means: its id (the idempotency key), its type, and the `EVENT` map."""

    event_id: str
    event_type: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Provider:
    """One webhook provider.

    `verify(body, headers, secret)` raises InvalidSignature; `headers` maps lower-case HTTP
    header names to values. `parse(body)` raises MalformedEvent. `secret_setting` names the
    setting holding the fallback secret used when a circle has no WebhookEndpoint of its own.
    """

    name: str
    verify: Callable[[bytes, Mapping[str, str], str], None]
    parse: Callable[[bytes], ParsedEvent]
    secret_setting: str
    recorded_headers: tuple[str, ...] = field(default=())

    @property
    def fallback_secret(self) -> str:
        """The secret from the environment ('' when unset)."""
        return getattr(settings, self.secret_setting, "") or ""

    @property
    def default_script(self) -> str:
        """The shipped handler script, `webhooks/scripts/<name>.rhai`."""
        return _read_script(self.name)


@cache
def _read_script(name: str) -> str:
    return (SCRIPTS / f"{name}.rhai").read_text()


def _load(modules: tuple[str, ...]) -> dict[str, Provider]:
    providers = [import_module(module).PROVIDER for module in modules]
    return {provider.name: provider for provider in providers}


def registry() -> dict[str, Provider]:
    """Every configured provider by name (the modules in `CIRCLES_WEBHOOK_PROVIDERS`)."""
    return _cached_load(tuple(settings.CIRCLES_WEBHOOK_PROVIDERS))


_cached_load = cache(_load)


def get_provider(name: str) -> Provider | None:
    """The provider called `name`, or None."""
    return registry().get(name)
