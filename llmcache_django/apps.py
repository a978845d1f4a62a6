"""App config: registers the checks, installs the LangChain global cache and the Prometheus collector."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import request_finished, setting_changed


class LLMCacheConfig(AppConfig):
    """``llmcache_django``: LangChain LLM caching on the project's ``CACHES``."""

    name = "llmcache_django"
    verbose_name = "LLM cache"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from llmcache_django.ops import checks, deploy_checks  # noqa: F401  (registers the checks)

        setting_changed.connect(_settings_changed, dispatch_uid="llmcache_django.settings_changed")
        install_user_erasure()
        install_global_cache()
        install_exit_flush()
        install_metrics()


def install_user_erasure() -> None:
    """Deleting a user erases their scope on every alias with ``OPTIONS["SCOPE"] = "user"``."""
    from django.conf import settings
    from django.db.models.signals import post_delete

    from llmcache_django.integrations.scopes import erase_user_scope

    post_delete.connect(erase_user_scope, sender=settings.AUTH_USER_MODEL, dispatch_uid="llmcache_django.erase_user")


def install_metrics() -> None:
    """Register the Prometheus collector on the default registry, where prometheus-client is installed."""
    from llmcache_django.core.latency import RECORDING

    if RECORDING:
        from llmcache_django.ops.metrics import install

        install()


def install_exit_flush() -> None:
    """Flush counts on SIGTERM (main thread only), and at the end of each request once it came."""
    from llmcache_django.core import sigterm

    sigterm.install()
    request_finished.connect(sigterm.flush_if_stopping, dispatch_uid="llmcache_django.flush_if_stopping")


def install_global_cache() -> None:
    """Make ``llm_caches["default"]`` LangChain's global cache when ``LLM_CACHE_SET_GLOBAL``.

    Installs a forwarding stand-in, so no connection is opened here. With the setting
    off, a stand-in installed earlier is removed (a cache set by the project is left).
    """
    from langchain_core.globals import get_llm_cache, set_llm_cache

    from llmcache_django.backends.handler import default_llm_cache
    from llmcache_django.conf import app_settings

    if app_settings.LLM_CACHE_SET_GLOBAL:
        set_llm_cache(default_llm_cache)
    elif get_llm_cache() is default_llm_cache:
        set_llm_cache(None)


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    from llmcache_django.backends.handler import llm_caches

    if setting in {"LLM_CACHES", "CACHES"}:
        llm_caches.reset()
    elif setting == "LLM_CACHE_SET_GLOBAL":
        install_global_cache()
