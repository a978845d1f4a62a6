"""The prompt page: `/` and `/async/` answer a form post; `stream/` and `async/stream/`
stream the answer as Server-Sent Events (sync and async views)."""

from __future__ import annotations

from django.urls import path

from example_project.demo import views

app_name = "demo"
urlpatterns = [
    path("", views.index, name="index"),
    path("async/", views.ask_async, name="ask-async"),
    path("stream/", views.stream, name="stream"),
    path("async/stream/", views.astream, name="astream"),
]
