"""URLs for the operations tests: Prometheus scrapes and health checks."""

from __future__ import annotations

from django.urls import include, path
from health_check.views import HealthCheckView

from llmcache_django.ops.health_check import llm_cache_checks
from llmcache_django.ops.metrics import metrics_view

urlpatterns = [
    path("", include("django_prometheus.urls")),  # django-prometheus's own /metrics
    path("llm-metrics", metrics_view),
    path("health/", HealthCheckView.as_view(checks=llm_cache_checks("default"))),
]
