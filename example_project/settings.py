"""Settings for the llmcache_django demo site. For local use only: never deploy them."""

from __future__ import annotations

import os
from pathlib import Path

from example_project.backends import backend_from_environ, llm_cache_settings

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "llmcache-demo-insecure-local-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "llmcache_django",
    "example_project.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Each request's LLM cache scope (LLM_CACHES OPTIONS SCOPE "user": one per signed-in user).
    "llmcache_django.middleware.LLMCacheMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("LLMCACHE_DEMO_DB") or BASE_DIR / "db.sqlite3",
        # The sync and async views share the file; wait for a lock rather than fail.
        "OPTIONS": {"timeout": 20},
    },
}

# The LLM cache: Django's database cache in db.sqlite3 unless LLMCACHE_DEMO_BACKEND says
# redis or memcached (with LLMCACHE_DEMO_REDIS_URL / LLMCACHE_DEMO_MEMCACHED_URL).
LLMCACHE_DEMO_BACKEND, LLMCACHE_DEMO_LOCATION = backend_from_environ(os.environ)
CACHES, LLM_CACHES = llm_cache_settings(LLMCACHE_DEMO_BACKEND, LLMCACHE_DEMO_LOCATION)
LLM_CACHE_SET_GLOBAL = True

# The local model's mean answer time in seconds; tests set it to 0.
LLMCACHE_DEMO_LATENCY = float(os.environ.get("LLMCACHE_DEMO_LATENCY", "1.5"))
LLMCACHE_DEMO_OPENAI_MODEL = os.environ.get("LLMCACHE_DEMO_OPENAI_MODEL", "gpt-4o-mini")
# Money saved on the dashboard and in llm_cache_stats: per million tokens, per model. The
# local stand-in models are priced as gpt-4o-mini (the model they stand in for), so the demo
# shows what its hits would have cost; a model with no price here adds no money.
GPT_4O_MINI_PRICE = {"input": 0.15, "output": 0.60}
LLM_CACHE_PRICES = {
    "gpt-4o-mini": GPT_4O_MINI_PRICE,
    "llmcache-demo-local": GPT_4O_MINI_PRICE,
    "llmcache-demo-agent": GPT_4O_MINI_PRICE,
}

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
