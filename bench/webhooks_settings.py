"""Settings of the webhook benchmark's server: the project's, plus a bare DRF view (bench.webhooks_urls)."""

from circleproject.settings import *  # noqa: F403

ROOT_URLCONF = "bench.webhooks_urls"
