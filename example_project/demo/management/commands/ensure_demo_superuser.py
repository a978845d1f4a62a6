"""Create the demo's users: the `demo`/`demo` superuser, only when the database has no
superuser, and a second user, `guest`/`guest`, who shows that each user's cached answers
are their own (the demo's LLM cache has `SCOPE = "user"`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # published on purpose: local use only
GUEST_USERNAME = "guest"
GUEST_PASSWORD = "guest"  # published on purpose: local use only


class Command(BaseCommand):
    help = (
        "Create a demo/demo superuser for the admin unless a superuser already exists, "
        "and a guest/guest user unless one exists."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()._default_manager
        if users.filter(is_superuser=True).exists():
            self.stdout.write("A superuser exists already: no demo superuser created.")
        else:
            users.create_superuser(DEMO_USERNAME, "", DEMO_PASSWORD)  # type: ignore[attr-defined]
            self._created("superuser", DEMO_USERNAME, DEMO_PASSWORD)
        if users.filter(username=GUEST_USERNAME).exists():
            self.stdout.write(f"User {GUEST_USERNAME!r} exists already.")
        else:
            users.create_user(GUEST_USERNAME, "", GUEST_PASSWORD)  # type: ignore[attr-defined]
            self._created("user", GUEST_USERNAME, GUEST_PASSWORD)

    def _created(self, kind: str, username: str, password: str) -> None:
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {kind} {username!r} with password {password!r} "
                "(for local use only: never on a server others can reach)."
            )
        )
