from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("llmcache_django", "0001_initial")]

    operations = [
        migrations.AlterModelOptions(
            name="llmcache",
            options={
                "default_permissions": (),
                "managed": False,
                "permissions": (
                    ("view_llmcache", "Can view the LLM cache"),
                    ("clear_llmcache", "Can clear the LLM cache"),
                    ("refresh_llm_cache", "Can ask for fresh LLM answers (LLM-Cache-Control header)"),
                ),
                "verbose_name": "LLM cache",
                "verbose_name_plural": "LLM caches",
            },
        ),
    ]
