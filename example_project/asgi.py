"""ASGI entry point, what `make demo` serves with uvicorn: async views run on the event loop.

With DEBUG on, static files (the admin's CSS) are served too, as `runserver` would. The
cache's lifespan shares the last counts and gives up single-flight leases at shutdown.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

from llmcache_django.asgi import with_cache_lifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

django_application = get_asgi_application()
application = with_cache_lifespan(ASGIStaticFilesHandler(django_application) if settings.DEBUG else django_application)
