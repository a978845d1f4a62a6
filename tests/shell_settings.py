"""Settings for tests that run ``manage.py`` in a subprocess: a database cache in a file."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["LLMCACHE_TEST_DB"]}}
