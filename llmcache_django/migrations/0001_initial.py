from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    operations = [
        migrations.CreateModel(
            name="LLMCache",
            fields=[
                ("alias", models.CharField(max_length=200, primary_key=True, serialize=False)),
            ],
            options={
                "verbose_name": "LLM cache",
                "verbose_name_plural": "LLM caches",
                "permissions": (
                    ("view_llmcache", "Can view the LLM cache"),
                    ("clear_llmcache", "Can clear the LLM cache"),
                ),
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
