"""Settings for the test suite; server-backed CACHES aliases are added by fixtures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

SECRET_KEY = "llmcache-django-tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "llmcache_django",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
#: A file, not ``:memory:``: Django's in-memory test database is one shared-cache SQLite
#: database, where a write by another thread (the stats flusher's, a live server's) fails at
#: once with "database table is locked" instead of waiting as a real SQLite file does.
#: pytest-django suffixes the name per xdist worker; Django deletes the file afterwards.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
        "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"llmcache-tests-{os.getpid()}.sqlite3")},
        "OPTIONS": {"timeout": 30, "init_command": "PRAGMA synchronous=OFF"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CACHES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests-default"},
    # One table for the whole run, hundreds of namespaces: Django's default MAX_ENTRIES (300)
    # would cull other tests' rows, their generation counters included (reading as a clear).
    "db": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "llmcache_tests_table",
        "OPTIONS": {"MAX_ENTRIES": 1_000_000},
    },
}
LLM_CACHES = {"default": {"CACHE": "db", "TTL": 3600}}
STATIC_URL = "/static/"
