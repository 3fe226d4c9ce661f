"""The connect-time circle lookup and its short cache."""

import pytest
from asgiref.sync import sync_to_async

from circles import lookups
from circles.models import Circle
from tests.helpers.keys import WalletKey

pytestmark = pytest.mark.django_db(transaction=True)


async def test_an_active_circle_is_trusted_for_the_cache_period(settings) -> None:
    settings.CIRCLES_CIRCLE_CACHE_SECONDS = 60
    key = WalletKey.named("lookup-cache").pubkey
    await sync_to_async(Circle.objects.create)(public_key=key, name="cached")
    lookups._active_circles.clear()
    found = await lookups.find_active_circle("0x" + key.upper())
    assert found is not None and found.public_key == key
    await sync_to_async(Circle.objects.filter(public_key=key).update)(is_active=False)
    assert await lookups.find_active_circle(key) == found  # within the cache period
    lookups._active_circles.clear()  # the period is over
    assert await lookups.find_active_circle(key) is None


async def test_misses_are_not_cached(settings) -> None:
    settings.CIRCLES_CIRCLE_CACHE_SECONDS = 60
    key = WalletKey.named("lookup-new").pubkey
    lookups._active_circles.clear()
    assert await lookups.find_active_circle(key) is None
    await sync_to_async(Circle.objects.create)(public_key=key, name="new")
    assert (await lookups.find_active_circle(key)).name == "new"  # reachable at once


async def test_junk_is_not_a_circle() -> None:
    assert await lookups.find_active_circle("not-a-key") is None
