"""A chat model call answered from the cache: `FakeListChatModel.invoke` on a hit."""

from __future__ import annotations

import functools

from langchain_core.caches import BaseCache
from langchain_core.language_models import FakeListChatModel

from benchmarks.cases import Latency
from benchmarks.contenders import Backend
from benchmarks.fixtures import prose
from benchmarks.timing import Plan, interleaved

QUESTION = "What is the capital of France? Answer in one paragraph."
#: Two answers: a hit repeats the first, a model call would move on to the second.
ANSWERS = [prose(420, seed=11), prose(420, seed=12)]


def chat_model(cache: BaseCache | bool) -> FakeListChatModel:
    """A fake chat model using `cache` (False: no cache at all)."""
    return FakeListChatModel(responses=ANSWERS, cache=cache)


def warmed(model: FakeListChatModel) -> FakeListChatModel:
    """Store the first answer, and make sure the second call is a cache hit."""
    first, second = model.invoke(QUESTION), model.invoke(QUESTION)
    if first.content != second.content:
        raise RuntimeError(f"{model.cache!r} did not serve the second invoke from the cache")
    return model


def measure(backend: Backend, plan: Plan) -> list[Latency]:
    """Invoke on a hit with our cache and upstream's, and without any cache for reference."""
    models = {
        "ours": warmed(chat_model(backend.ours.cache)),
        "upstream": warmed(chat_model(backend.upstream.cache)),
        "no cache": chat_model(False),
    }
    calls = {name: functools.partial(model.invoke, QUESTION) for name, model in models.items()}
    found = interleaved(calls, plan)
    return [Latency(backend.name, "chat", "invoke", name, s) for name, s in found.items()]
