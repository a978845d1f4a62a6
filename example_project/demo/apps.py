"""The demo app's configuration."""

from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Connects the model's settings reset."""

    name = "example_project.demo"
    label = "llmcache_demo"
    verbose_name = "LLM cache demo"

    def ready(self) -> None:
        from example_project.demo import chat  # noqa: F401 (connect the receiver)
