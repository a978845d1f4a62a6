"""URLs of the demo site: the prompt page, the admin and, with prometheus-client, `/metrics`."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path
from django.views.decorators.cache import cache_control

#: A small icon for the tab, so browsers asking for /favicon.ico get one instead of a 404.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#0b6e4f"/>'
    '<path d="M9 17l5 5 9-12" fill="none" stroke="#fff" stroke-width="3.5" stroke-linecap="round"/></svg>'
)


@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """The demo's tab icon (SVG, which every current browser accepts at /favicon.ico)."""
    return HttpResponse(FAVICON, content_type="image/svg+xml")


urlpatterns: list[URLPattern | URLResolver] = [
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("", include("example_project.demo.urls")),
]

try:
    from llmcache_django.ops.metrics import metrics_view
except ImportError:  # the [prometheus] extra is not installed
    pass
else:
    urlpatterns.append(path("metrics", metrics_view, name="metrics"))
