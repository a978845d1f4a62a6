"""URLs of the demo site: the prompt page, the admin and, with prometheus-client, `/metrics`."""

from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("", include("example_project.demo.urls")),
]

try:
    from llmcache_django.metrics import metrics_view
except ImportError:  # the [prometheus] extra is not installed
    pass
else:
    urlpatterns.append(path("metrics", metrics_view, name="metrics"))
