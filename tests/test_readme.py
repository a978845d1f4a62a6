"""The README's settings snippets pass ``manage.py check`` and build the class it promises."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from llmcache_django import DjangoLLMCache, MemcachedLLMCache, RedisLLMCache, llm_caches

README = Path(__file__).resolve().parent.parent / "README.md"
SNIPPET_RE = re.compile(r"<!-- settings: (?P<name>[\w-]+) -->\n```python\n(?P<code>.*?)```", re.DOTALL)
EXPECTED = {
    "django-redis": RedisLLMCache,
    "django-builtin-redis": RedisLLMCache,
    "memcached": MemcachedLLMCache,
    "memcached-pool": MemcachedLLMCache,
    "database": DjangoLLMCache,
    "sentinel": RedisLLMCache,
    "valkey": RedisLLMCache,
    "redis-cluster": RedisLLMCache,
    "single-flight": RedisLLMCache,
}


def snippets() -> dict[str, str]:
    return {match["name"]: match["code"] for match in SNIPPET_RE.finditer(README.read_text())}


def test_the_readme_has_a_snippet_per_backend() -> None:
    assert set(snippets()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_settings_snippet_passes_check_and_maps_to_its_class(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(snippets()[name], namespace)  # the README's own text
    assert "llmcache_django" in namespace["INSTALLED_APPS"]
    overrides = {key: namespace[key] for key in ("CACHES", "LLM_CACHES", "LLM_CACHE_SET_GLOBAL") if key in namespace}
    with override_settings(**overrides):
        call_command("check", "--fail-level", "WARNING", "--tag", "caches")
        assert type(llm_caches["default"]) is EXPECTED[name]  # built without connecting


def test_the_benchmark_figures_are_those_of_the_latest_results() -> None:
    import json

    from benchmarks import readme_figures

    results = json.loads(readme_figures.RESULTS.read_text())
    text = README.read_text()
    assert readme_figures.render(text, results) == text, "run make readme-figures"
    assert "<!-- bench:headline -->\n| " in text  # the markers are filled, not empty


def test_the_figures_follow_the_results_they_come_from() -> None:
    import copy
    import json

    from benchmarks import readme_figures

    results = json.loads(readme_figures.RESULTS.read_text())
    changed = copy.deepcopy(results)
    for row in changed["measurements"]["latencies"]:
        if (row["backend"], row["payload"], row["op"], row["contender"]) == ("Redis sync", "chat", "hit", "ours"):
            row["summary"]["median_us"] = 4321.0
    text = readme_figures.render(README.read_text(), changed)
    assert "| Redis hit | 4,321 µs |" in text


def test_make_help_lists_every_target_people_run() -> None:
    import subprocess

    makefile = README.parent / "Makefile"
    help_text = subprocess.run(
        ["make", "-s", "-f", str(makefile), "help"], capture_output=True, text=True, check=True
    ).stdout
    for target in ("demo", "demo-redis", "demo-memcached", "demo-stop", "test", "lint", "format", "bench", "clean"):
        assert re.search(rf"make {target}\b", help_text), target
