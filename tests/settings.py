"""Settings for the in-process tests: the project's own, with a test secret key."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from circleproject.settings import *  # noqa: F403

# Django's test Client.login() calls authenticate() without a request, which django-axes refuses;
# the in-process tests sign in that way. The admin sign-in throttling runs for real in the e2e
# tests (tests/e2e/test_admin_login_throttle.py), against the project's own settings.
AXES_ENABLED = False
