"""``manage.py clear_llm_cache``: remove LLM cache entries, all or selectively."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from llmcache_django.core.cache import LLMCache
from llmcache_django.core.control import scope_problem
from llmcache_django.management.commands._common import (
    add_alias_arguments,
    non_blank,
    parse_age,
    progress_printer,
    resolve_model,
    selected_caches,
    server_errors,
)
from llmcache_django.management.commands._kinds import add_kind_arguments, clear_kind, selected_kind
from llmcache_django.stores.base import PartialClearError

PROGRESS_THRESHOLD = 1000


class Command(BaseCommand):
    help = (
        "Remove LLM cache entries: a whole namespace, one model's, or those older than an age. Nothing else is touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_alias_arguments(parser)
        parser.add_argument("--model", help="Only entries of this model (as the admin lists it).")
        parser.add_argument("--older-than", metavar="AGE", help="Only entries older than AGE (90, 30m, 12h, 7d, 2w).")
        parser.add_argument(
            "--scope", help="Only entries of this scope (user:42, tenant:acme): erases what it cached for it."
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would go; delete nothing.")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="Do not ask for confirmation."
        )
        add_kind_arguments(parser)

    def handle(self, *args: str, **options: Any) -> None:
        if selected_kind(options) is not None:
            clear_kind(self, options)
            return
        model, age = non_blank("--model", options["model"]), non_blank("--older-than", options["older_than"])
        older_than = parse_age(age) if age is not None else None
        scope = _scope(non_blank("--scope", options["scope"]))
        plans = [
            (cache, {**self._filters(cache, model, older_than), "scope": scope}) for cache in self._caches(options)
        ]
        if options["interactive"] and not options["dry_run"] and not self._confirmed(plans):
            self.stdout.write("Cancelled; nothing was deleted.")
            return
        results = [self._clear(cache, filters, options) for cache, filters in plans]
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2))

    def _caches(self, options: dict[str, Any]) -> list[LLMCache]:
        return selected_caches(options["aliases"], options["all"])

    def _filters(self, cache: LLMCache, model: str | None, older_than: float | None) -> dict[str, Any]:
        if model is not None and cache.can_list:
            with server_errors(cache, "listing models"):
                model = resolve_model(cache, model)
        return {"model": model, "older_than": older_than}

    def _confirmed(self, plans: list[tuple[LLMCache, dict[str, Any]]]) -> bool:
        """Say what will go and read the answer, from a terminal or a pipe (as ``flush`` does)."""
        for cache, filters in plans:
            with server_errors(cache, "counting entries"):
                count = cache.delete_entries(**filters, dry_run=True)
            what = "all entries (this backend cannot count them)" if count is None else f"{count} entries"
            self.stdout.write(
                f"This will delete {what}{_describe(filters)} from LLM cache {cache.alias!r} on {cache.store.describe()}."
            )
        try:
            answer = input("Type 'yes' to continue, or anything else to cancel: ")
        except EOFError as exc:
            raise CommandError(
                "No answer on standard input, so nothing was deleted; pass --noinput to clear without asking."
            ) from exc
        return answer.strip().lower() == "yes"

    def _clear(self, cache: LLMCache, filters: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        verbosity, dry_run = options["verbosity"], options["dry_run"]
        if verbosity >= 2 and not options["json"]:
            self.stdout.write(
                f"LLM cache {cache.alias!r}: {cache.store.describe()}, namespace {cache.namespace!r}{_describe(filters)}"
            )  # type: ignore[attr-defined]
        with server_errors(cache, "counting entries" if dry_run else "clearing"):
            try:
                count = cache.delete_entries(**filters, dry_run=dry_run, progress=self._progress(cache, filters))
            except PartialClearError as exc:  # some nodes or entries went: say which, and what did not
                raise CommandError(f"LLM cache {cache.alias!r}: {exc.describe()}.") from exc
        if verbosity >= 1 and not options["json"]:
            self.stdout.write(_summary(cache.alias, count, dry_run, filters["scope"]))
        return {
            "alias": cache.alias,
            "location": cache.store.describe(),
            "namespace": cache.namespace,
            **filters,
            "dry_run": dry_run,
            "count": count,
        }

    def _progress(self, cache: LLMCache, filters: dict[str, Any]) -> Any:
        if not self.stdout.isatty() or not any(filters.values()):
            return None
        show = progress_printer(lambda text: self.stdout.write(text, ending=""))
        return lambda done, total: show(done, total) if total >= PROGRESS_THRESHOLD else None


def _describe(filters: dict[str, Any]) -> str:
    parts = []
    if filters["model"]:
        parts.append(f"model {filters['model']!r}")
    if filters["older_than"] is not None:
        parts.append(f"older than {filters['older_than']:g}s")
    if filters.get("scope") is not None:
        parts.append(f"scope {filters['scope']!r}")
    return f" ({', '.join(parts)})" if parts else ""


def _summary(alias: str, count: int | None, dry_run: bool, scope: str | None = None) -> str:
    verb = "Would clear" if dry_run else "Cleared"
    if count is None:
        which = "all entries" if scope is None else f"all entries of scope {scope!r}"
        return f"{verb} {which} from LLM cache {alias!r} (this backend cannot count them)."
    return f"{verb} {count} {'entry' if count == 1 else 'entries'} from LLM cache {alias!r}."


def _scope(scope: str | None) -> str | None:
    problem = scope_problem(scope)
    if problem is not None:
        raise CommandError(f"--scope {problem}.")
    return scope
