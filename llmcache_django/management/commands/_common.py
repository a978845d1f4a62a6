"""What both LLM cache commands share: choosing aliases and turning failures into errors."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from llmcache_django.backends.handler import configured_aliases, llm_caches
from llmcache_django.core.cache import LLMCache

AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
AGE_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")


def add_alias_arguments(parser: CommandParser) -> None:
    parser.add_argument("aliases", nargs="*", metavar="ALIAS", help="LLM_CACHES aliases (default: 'default').")
    parser.add_argument("--all", action="store_true", help="Every alias in LLM_CACHES.")
    parser.add_argument("--json", action="store_true", help="Print JSON for scripts.")


def selected_caches(aliases: list[str], every: bool) -> list[LLMCache]:
    """The caches named on the command line; an unknown alias is a CommandError."""
    known = configured_aliases()
    unknown = [alias for alias in (aliases or ["default"]) if alias not in known]
    if unknown:
        raise CommandError(
            f"Unknown LLM cache alias {', '.join(map(repr, unknown))}; LLM_CACHES defines {', '.join(map(repr, known)) or 'none'}."
        )
    chosen = known if every else (aliases or ["default"])
    try:
        return [llm_caches[alias] for alias in chosen]
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from exc


def resolve_model(cache: LLMCache, model: str) -> str:
    """The stored model name ``model`` means in ``cache`` (``FakeListChatModel`` finds
    ``fake-list-chat-model``); a CommandError naming the models there if none matches."""
    models = cache.model_summary()
    if model in models:
        return model
    matches = [name for name in models if _comparable(name) == _comparable(model)]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(f"{name!r} ({count})" for name, (count, _) in models.items()) or "none (it is empty)"
    raise CommandError(f"LLM cache {cache.alias!r} has no entries of model {model!r}; its models: {listed}.")


def _comparable(model: str) -> str:
    return re.sub(r"[^a-z0-9]", "", model.lower())


def non_blank(option: str, value: str | None) -> str | None:
    """``value`` if given and not blank; an empty or blank filter is a CommandError, never "no filter"
    (a shell variable that happens to be empty must not widen a clear to everything)."""
    if value is not None and not value.strip():
        raise CommandError(f"{option} {value!r} is empty; name a value, or leave {option} out. Nothing was deleted.")
    return value


def parse_age(text: str) -> float:
    """``"90"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` -> seconds."""
    match = AGE_RE.match(text.strip().lower())
    if not match:
        raise CommandError(
            f"--older-than {text!r} is not an age; use seconds or a number with s, m, h, d or w (e.g. 7d)."
        )
    return float(match.group(1)) * AGE_UNITS[match.group(2) or "s"]


@contextmanager
def server_errors(cache: LLMCache, doing: str) -> Iterator[None]:
    """Turn any failure while ``doing`` into one clear CommandError line."""
    try:
        yield
    except CommandError:
        raise
    except Exception as exc:
        raise CommandError(
            f"LLM cache {cache.alias!r} ({cache.store.describe()}): {doing} failed: {type(exc).__name__}: {exc}"
        ) from exc


def progress_printer(write: Callable[[str], None]) -> Callable[[int, int], None]:
    """A one-line progress bar for a terminal."""

    def show(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            filled = int(30 * done / total) if total else 30
            write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}" + ("\n" if done == total else ""))

    return show
