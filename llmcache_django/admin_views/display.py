"""Cached prompts, ``llm_string`` values and generations, made readable for the admin."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.outputs import Generation

if TYPE_CHECKING:
    from llmcache_django.core.listing import EntryInfo

#: LangChain's ``llm_string``: the model's JSON description, this separator, then its call parameters.
PARAMS_SEPARATOR = "---"


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON (anything JSON cannot hold shown with ``repr``)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=repr)


def pretty_llm_string(llm_string: str) -> str:
    """Indent the JSON part of an ``llm_string`` and put each call parameter on its own line."""
    head, separator, params = llm_string.rpartition(PARAMS_SEPARATOR)
    if not separator:
        head, params = "", llm_string
    parts = [_pretty_model_json(head)] if head else []
    parts.append(_pretty_params(params))
    return f"\n{PARAMS_SEPARATOR}\n".join(parts)


def _pretty_model_json(text: str) -> str:
    try:
        return pretty_json(json.loads(text))
    except ValueError:
        return text


def _pretty_params(text: str) -> str:
    # LangChain writes ``str(sorted(params.items()))``; literal_eval reads it without running code.
    try:
        items = ast.literal_eval(text)
        return "\n".join(f"{key} = {value!r}" for key, value in items)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def prompt_text(prompt: str) -> str:
    """The prompt as a person would read it: chat messages become ``role: text`` lines."""
    try:
        messages = json.loads(prompt)
        lines = [_message_line(message) for message in messages]
    except (ValueError, TypeError, AttributeError, KeyError):
        return prompt  # a plain completion prompt
    return "\n".join(lines)


def prompt_preview(prompt: str) -> str:
    """What a list shows of a prompt: the last human message of a chat, else the prompt, on one line.

    A chat prompt starts with the same system message row after row; the last thing the
    user asked is what tells entries apart.
    """
    try:
        messages = json.loads(prompt)
        asked = [message["kwargs"] for message in messages if message["kwargs"].get("type") == "human"]
    except (ValueError, TypeError, AttributeError, KeyError):
        asked = []
    text = content_text(asked[-1].get("content", "")) if asked else prompt_text(prompt)
    return " ".join(text.split())


#: How much of the prompt names an entry in confirmations, messages and "Recent actions".
LABEL_PROMPT_CHARS = 40


def entry_label(info: EntryInfo) -> str:
    """An entry as people tell it apart: ``“What is the capital of Fra…” of model 'gpt-4o'``."""
    prompt = prompt_preview(info.prompt)
    short = prompt if len(prompt) <= LABEL_PROMPT_CHARS else prompt[: LABEL_PROMPT_CHARS - 1].rstrip() + "…"
    return f"“{short}” of model {info.model!r}"


def _message_line(message: dict[str, Any]) -> str:
    kwargs = message["kwargs"]
    return f"{kwargs.get('type', 'message')}: {content_text(kwargs.get('content', ''))}"


def content_text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    texts = [block.get("text", "") if isinstance(block, dict) else str(block) for block in content]
    return " ".join(text for text in texts if text)


@dataclass
class ToolCallView:
    """One tool call of a cached message."""

    name: str
    id: str
    args: str
    error: str = ""


@dataclass
class GenerationView:
    """One cached generation, ready for the entry template."""

    kind: str
    text: str
    message_type: str = ""
    content: str = ""
    tool_calls: list[ToolCallView] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    response_metadata: str = ""
    generation_info: str = ""


def generation_view(generation: Generation) -> GenerationView:
    """Everything a cached generation holds, each part formatted for reading."""
    view = GenerationView(
        kind=type(generation).__name__,
        text=str(generation.text),  # a callable str subclass on messages; templates would call it
        generation_info=pretty_json(generation.generation_info) if generation.generation_info else "",
    )
    message = getattr(generation, "message", None)
    if message is not None:
        view.message_type = message.type
        view.content = message.content if isinstance(message.content, str) else pretty_json(message.content)
        view.tool_calls = _tool_calls(message)
        view.usage = dict(getattr(message, "usage_metadata", None) or {})
        view.response_metadata = pretty_json(message.response_metadata) if message.response_metadata else ""
    return view


def _tool_calls(message: Any) -> list[ToolCallView]:
    calls = [
        ToolCallView(name=call.get("name") or "", id=call.get("id") or "", args=pretty_json(call.get("args")))
        for call in getattr(message, "tool_calls", None) or []
    ]
    calls += [
        ToolCallView(
            name=call.get("name") or "",
            id=call.get("id") or "",
            args=str(call.get("args")),
            error=call.get("error") or "invalid",
        )
        for call in getattr(message, "invalid_tool_calls", None) or []
    ]
    return calls
