"""An unmanaged model: no table, only the admin section and the permissions for it."""

from __future__ import annotations

from django.db import models


class LLMCache(models.Model):
    """One ``LLM_CACHES`` alias, as the admin and its ``LogEntry`` rows refer to it.

    Nothing is ever stored: the model exists so the admin index gets an "LLM cache"
    section and so ``view_llmcache`` / ``clear_llmcache`` can be granted like any permission.
    """

    alias = models.CharField(max_length=200, primary_key=True)
    #: What an admin action touched, for the "Recent actions" list (not a field).
    label = ""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = (
            ("view_llmcache", "Can view the LLM cache"),
            ("clear_llmcache", "Can clear the LLM cache"),
            ("refresh_llm_cache", "Can ask for fresh LLM answers (LLM-Cache-Control header)"),
        )
        verbose_name = "LLM cache"
        verbose_name_plural = "LLM caches"

    def __str__(self) -> str:
        return self.label or f"LLM cache {self.alias!r}"
