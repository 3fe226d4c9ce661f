"""Settings for the in-process tests: the project's own, with a test secret key."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from circleproject.settings import *  # noqa: F403
