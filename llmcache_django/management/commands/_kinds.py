"""``clear_llm_cache --langgraph | --embeddings | --byte-store``: the other kinds of entry of an alias."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from llmcache_django.core.cache import LLMCache
from llmcache_django.core.stats import COUNTERS
from llmcache_django.integrations.node_entries import namespace_of
from llmcache_django.integrations.side_cache import SideCache
from llmcache_django.management.commands._common import non_blank, selected_caches, server_errors

#: Command-line option -> (sub-namespace, what its entries are called).
KINDS = {
    "langgraph": ("langgraph", "LangGraph node entries"),
    "embeddings": ("embeddings", "cached embeddings"),
    "byte_store": ("bytes", "byte-store values"),
}


def add_kind_arguments(parser: CommandParser) -> None:
    """``--langgraph [--namespace NODE ...]``, ``--embeddings``, ``--byte-store``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--langgraph", action="store_true", help="Clear LangGraph node entries instead of LLM entries.")
    group.add_argument("--embeddings", action="store_true", help="Clear cached embeddings instead of LLM entries.")
    group.add_argument("--byte-store", action="store_true", help="Clear CacheByteStore values instead of LLM entries.")
    parser.add_argument(
        "--namespace", action="append", metavar="NODE", help="With --langgraph: only this node's entries (repeatable)."
    )


def selected_kind(options: dict[str, Any]) -> str | None:
    """The kind the options select (``None``: LLM entries); ``--namespace`` needs ``--langgraph``."""
    kind = next((option for option in KINDS if options.get(option)), None)
    if options.get("namespace") and kind != "langgraph":
        raise CommandError("--namespace selects LangGraph nodes: use it with --langgraph.")
    return kind


def clear_kind(command: BaseCommand, options: dict[str, Any]) -> None:
    """Clear (or count, with ``--dry-run``) the selected kind's entries of each chosen alias."""
    option = selected_kind(options)
    assert option is not None
    kind, label = KINDS[option]
    nodes = [non_blank("--namespace", node) or "" for node in options.get("namespace") or []]
    if options["model"] or options["older_than"]:
        raise CommandError(f"--model and --older-than select LLM entries, not {label}.")
    sides = [SideCache(kind, cache) for cache in selected_caches(options["aliases"], options["all"])]
    where = f" of node {', '.join(map(repr, nodes))}" if nodes else ""
    if options["interactive"] and not options["dry_run"]:
        for side in sides:
            command.stdout.write(f"This will delete every one of the {label}{where} of alias {side.llm_cache.alias!r}.")
        if _answer() != "yes":
            command.stdout.write("Cancelled; nothing was deleted.")
            return
    results = []
    for side in sides:
        with server_errors(side.llm_cache, "counting entries" if options["dry_run"] else "clearing"):
            count = _clear(side, nodes, options["dry_run"])
        results.append({"alias": side.llm_cache.alias, "kind": kind, "nodes": nodes, "count": count})
        if options["verbosity"] >= 1 and not options["json"]:
            verb = "Would clear" if options["dry_run"] else "Cleared"
            amount = "all" if count is None else str(count)
            command.stdout.write(f"{verb} {amount} {label}{where} from alias {side.llm_cache.alias!r}.")
    if options["json"]:
        command.stdout.write(json.dumps(results, indent=2))


def _clear(side: SideCache, nodes: list[str], dry_run: bool) -> int | None:
    if not nodes:
        return side.clear(dry_run=dry_run)
    try:
        return side.delete_where(lambda value: _of_nodes(value, nodes), dry_run=dry_run)
    except NotImplementedError as exc:
        raise CommandError(str(exc)) from exc


def _of_nodes(value: bytes, nodes: list[str]) -> bool:
    namespace = namespace_of(value)
    return bool(namespace) and namespace is not None and namespace[-1] in nodes


def _answer() -> str:
    try:
        return input("Type 'yes' to continue, or anything else to cancel: ").strip().lower()
    except EOFError as exc:
        raise CommandError(
            "No answer on standard input, so nothing was deleted; pass --noinput to clear without asking."
        ) from exc


def kind_stats(cache: LLMCache, *, reset: bool = False) -> dict[str, dict[str, Any]]:
    """The shared counters of each other kind of entry used on ``cache``'s alias, as
    ``"<alias> (<kind>)": counters`` (kinds never used are left out)."""
    report = {}
    for kind, _label in KINDS.values():
        side = SideCache(kind, cache)
        stats = side.shared_stats()
        if any(stats[name] for name in COUNTERS):
            report[f"{cache.alias} ({kind})"] = stats
            if reset:
                side.store.reset_counters(list(COUNTERS))
    return report
