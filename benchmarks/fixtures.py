"""The cached values every contender stores and reads: four realistic LLM results."""

from __future__ import annotations

import random
from dataclasses import dataclass

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation

WORDS = [
    "the",
    "cache",
    "model",
    "prompt",
    "answer",
    "token",
    "request",
    "server",
    "latency",
    "python",
    "django",
    "redis",
    "value",
    "entry",
    "result",
    "user",
    "question",
    "context",
    "system",
    "response",
    "memory",
    "network",
    "key",
    "time",
    "data",
    "capital",
    "france",
    "paris",
    "river",
    "city",
    "people",
    "history",
    "because",
    "which",
    "would",
    "could",
    "should",
]

LLM_STRING = (
    '{"lc": 1, "type": "constructor", "id": ["langchain", "chat_models", "openai", '
    '"ChatOpenAI"], "kwargs": {"model_name": "gpt-4o-mini", "temperature": 0.0, '
    '"max_tokens": 1024, "openai_api_key": {"lc": 1, "type": "secret", "id": '
    '["OPENAI_API_KEY"]}, "max_retries": 2, "n": 1}, "name": "ChatOpenAI"}---'
    "[('_type', 'openai-chat'), ('model', 'gpt-4o-mini'), ('stop', None)]"
)


@dataclass(frozen=True)
class Payload:
    """One cached LLM result under a prompt of its own."""

    name: str
    label: str
    prompt: str
    generations: list[Generation]


def prose(n_chars: int, seed: int) -> str:
    """Deterministic word salad: compresses roughly like English text."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < n_chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:n_chars]


def prompt_for(name: str) -> str:
    """A serialized chat prompt of typical size, unique per payload."""
    question = prose(300, seed=len(name))
    return (
        '[{"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", '
        f'"HumanMessage"], "kwargs": {{"content": "{name}: {question}", "type": "human"}}}}]'
    )


def chat_generation(content: str) -> ChatGeneration:
    """A chat answer carrying the metadata real providers attach."""
    message = AIMessage(
        content=content,
        id="run-3f8b7a62-5c1e-4d2b-9a7e-0c4f1b2d3e4f-0",
        response_metadata={
            "token_usage": {"completion_tokens": 96, "prompt_tokens": 64, "total_tokens": 160},
            "model_name": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_0ba0d124f1",
            "finish_reason": "stop",
            "logprobs": None,
        },
        usage_metadata={"input_tokens": 64, "output_tokens": 96, "total_tokens": 160},
    )
    return ChatGeneration(message=message, generation_info={"finish_reason": "stop"})


def text_generation(text: str) -> Generation:
    """A completion-model answer."""
    return Generation(text=text, generation_info={"finish_reason": "stop", "logprobs": None})


def payloads() -> list[Payload]:
    """Short text, ~1.5 KB chat, three generations, 100 KB answer."""
    specs: list[tuple[str, str, list[Generation]]] = [
        ("short", "short text Generation", [Generation(text="Paris is the capital of France.")]),
        ("chat", "~1.5 KB ChatGeneration + usage", [chat_generation(prose(420, seed=1))]),
        ("three", "3 text Generations", [text_generation(prose(200, seed=s)) for s in (2, 3, 4)]),
        ("large", "100 KB ChatGeneration", [chat_generation(prose(100_000, seed=5))]),
    ]
    return [Payload(name, label, prompt_for(name), gens) for name, label, gens in specs]


def missing_prompt() -> str:
    """A prompt nothing ever stores: every lookup of it is a miss."""
    return prompt_for("never-stored")
