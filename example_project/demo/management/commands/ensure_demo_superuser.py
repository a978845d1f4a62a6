"""Create the demo's `demo`/`demo` superuser, only when the database has no superuser."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # published on purpose: local use only


class Command(BaseCommand):
    help = "Create a demo/demo superuser for the admin unless a superuser already exists."

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()._default_manager
        if users.filter(is_superuser=True).exists():
            self.stdout.write("A superuser exists already: no demo superuser created.")
            return
        users.create_superuser(DEMO_USERNAME, "", DEMO_PASSWORD)  # type: ignore[attr-defined]
        self.stdout.write(
            self.style.SUCCESS(
                f"Created superuser {DEMO_USERNAME!r} with password {DEMO_PASSWORD!r} "
                "(for local use only: never on a server others can reach)."
            )
        )
