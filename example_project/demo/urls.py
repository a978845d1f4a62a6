"""The prompt page: `/` and `/async/` answer a form post; `stream/` and `async/stream/`
stream the answer as Server-Sent Events (sync and async views); `agent/` runs an agent
whose steps stream the same way; `login/` and `logout/` switch users (each has their own
scope of the LLM cache)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from example_project.demo import agent_views, views

app_name = "demo"
urlpatterns = [
    path("", views.index, name="index"),
    path("async/", views.ask_async, name="ask-async"),
    path("stream/", views.stream, name="stream"),
    path("async/stream/", views.astream, name="astream"),
    path("agent/", agent_views.agent_page, name="agent"),
    path("agent/stream/", agent_views.agent_stream, name="agent-stream"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="demo/login.html", next_page="demo:index"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="demo:index"), name="logout"),
]
