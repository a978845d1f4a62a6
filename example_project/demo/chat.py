"""Which chat model the demo asks: ChatOpenAI when configured, else the local model."""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from langchain_core.language_models.chat_models import BaseChatModel

from example_project.demo.local_model import LocalChatModel
from llmcache_django import cached

OPENAI_MODEL = "gpt-4o-mini"
LATENCY = 1.5  # seconds; settings.LLMCACHE_DEMO_LATENCY overrides it


@functools.cache
def chat_model() -> BaseChatModel:
    """The demo's one chat model, built on first use: invoke and stream both cached."""
    return cached(bare_chat_model())


def bare_chat_model() -> BaseChatModel:
    """ChatOpenAI when configured, else the local model; not wrapped."""
    if openai_configured():
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=getattr(settings, "LLMCACHE_DEMO_OPENAI_MODEL", OPENAI_MODEL))
    return LocalChatModel(latency=getattr(settings, "LLMCACHE_DEMO_LATENCY", LATENCY))


def openai_configured() -> bool:
    """Whether `OPENAI_API_KEY` is set and `langchain-openai` is installed."""
    has_package = importlib.util.find_spec("langchain_openai") is not None
    return bool(os.environ.get("OPENAI_API_KEY")) and has_package


def model_label(model: BaseChatModel) -> str:
    """A short name for the page: which model answers."""
    name = getattr(model, "model_name", None) or model._llm_type
    return f"{name} (local, no API key)" if isinstance(model, LocalChatModel) else str(name)


@receiver(setting_changed)
def _rebuild_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("LLMCACHE_DEMO_"):
        chat_model.cache_clear()
