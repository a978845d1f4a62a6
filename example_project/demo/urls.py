"""The prompt page: `/` is the sync view, `/async/` the async one."""

from __future__ import annotations

from django.urls import path

from example_project.demo import views

app_name = "demo"
urlpatterns = [
    path("", views.index, name="index"),
    path("async/", views.ask_async, name="ask-async"),
]
