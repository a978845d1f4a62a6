"""Entry keys: derived from what the provider sees of a chat prompt, nothing else."""

from __future__ import annotations

import pytest
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from llmcache_django.core.cache import LLMCache
from llmcache_django.core.keys import KEY_VERSION, canonical_prompt, entry_digest
from tests.helpers import chat_generation

LLM = "fake-chat---[('stop', None)]"
QUESTION = HumanMessage("What is the weather in Paris?")
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
OTHER_IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,R0lGODlh"}}
USAGE = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}


def tool_step(call_id: str = "call_1", result: str = "sunny, 21 degrees", **answer: object) -> list[BaseMessage]:
    """An answer calling the weather tool, and the tool's result."""
    call = {"name": "weather", "args": {"city": "Paris"}, "id": call_id}
    return [
        AIMessage(content="", tool_calls=[call], **answer),  # type: ignore[arg-type]
        ToolMessage(content=result, tool_call_id=call_id, name="weather"),
    ]


def history(*messages: BaseMessage) -> str:
    """The prompt LangChain gives the cache for ``messages``."""
    return dumps(list(messages))


#: Pairs of histories a provider is sent differently: they must never share an entry.
DIFFERENT = {
    "a tool result": (history(QUESTION, *tool_step()), history(QUESTION, *tool_step(result="rain, 12 degrees"))),
    "an image": (
        history(HumanMessage(content=[{"type": "text", "text": "What is this?"}, IMAGE])),
        history(HumanMessage(content=[{"type": "text", "text": "What is this?"}, OTHER_IMAGE])),
    ),
    "a tool call id": (history(QUESTION, *tool_step("call_1")), history(QUESTION, *tool_step("call_2"))),
    "a system message": (history(QUESTION), history(SystemMessage("Answer in French."), QUESTION)),
    "the role": (history(HumanMessage("Hi.")), history(AIMessage("Hi."))),
    "a name": (history(HumanMessage("Hi.", name="ann")), history(HumanMessage("Hi.", name="bob"))),
    "additional_kwargs": (
        history(QUESTION, AIMessage("Sunny.", additional_kwargs={"reasoning_content": "look it up"})),
        history(QUESTION, AIMessage("Sunny.")),
    ),
}
#: Pairs of histories a provider is sent the same way: an earlier answer live, or a hit.
SAME = {
    "usage and cost": (
        history(QUESTION, *tool_step(usage_metadata=USAGE)),
        history(QUESTION, *tool_step(usage_metadata={**USAGE, "total_cost": 0})),  # type: ignore[dict-item]
    ),
    "response metadata and the hit marker": (
        history(QUESTION, *tool_step(response_metadata={"finish_reason": "tool_calls"})),
        history(QUESTION, *tool_step(response_metadata={"llm_cache": {"hit": True, "alias": "default"}})),
    ),
    "message ids": (history(QUESTION, *tool_step(id="lc_run--1-0")), history(QUESTION, *tool_step(id="lc_run--2-0"))),
    "a chunk or a message": (
        history(QUESTION, AIMessage("Sunny.")),
        history(QUESTION, AIMessageChunk(content="Sunny.", id="lc_run--3")),
    ),
    "a streamed answer's block index": (
        history(QUESTION, AIMessage(content=[{"type": "text", "text": "Sunny.", "index": 0}])),
        history(QUESTION, AIMessage(content=[{"type": "text", "text": "Sunny."}])),
    ),
}


@pytest.mark.parametrize("first, second", DIFFERENT.values(), ids=DIFFERENT.keys())
def test_histories_a_provider_sees_differently_never_share_an_entry(
    llm_cache: LLMCache, first: str, second: str
) -> None:
    llm_cache.update(first, LLM, [chat_generation("first")])

    assert llm_cache.lookup(second, LLM) is None
    assert llm_cache.lookup(first, LLM) is not None


@pytest.mark.parametrize("first, second", SAME.values(), ids=SAME.keys())
def test_histories_a_provider_sees_the_same_share_an_entry(first: str, second: str) -> None:
    assert first != second
    assert entry_digest(first, LLM) == entry_digest(second, LLM)
    assert canonical_prompt(first) == canonical_prompt(second)


def test_a_history_with_earlier_hits_reads_the_entry_written_after_live_calls(llm_cache: LLMCache) -> None:
    live, replayed = SAME["response metadata and the hit marker"]
    llm_cache.update(live, LLM, [chat_generation("answer")])

    entry = llm_cache.lookup_entry(replayed, LLM)

    assert entry is not None and entry.prompt == canonical_prompt(live)


@pytest.mark.parametrize(
    "prompt",
    ["What is 2 + 2?", "", "[{not json", '[{"lc": 1, "type": "secret", "id": ["X"]}]', "[1, 2]", '[{"a": 1}]'],
)
def test_a_prompt_that_is_not_serialized_messages_is_used_unchanged(prompt: str) -> None:
    assert canonical_prompt(prompt) == prompt


def test_the_canonical_form_is_a_fixed_point() -> None:
    for first, second in [*DIFFERENT.values(), *SAME.values()]:
        for prompt in (first, second):
            canonical = canonical_prompt(prompt)
            assert canonical_prompt(canonical) == canonical


def test_the_key_version_is_part_of_every_key() -> None:
    """Entries written by earlier versions (whose keys were the bare digest) are misses."""
    from hashlib import sha256

    prompt_bytes = b"p"
    earlier = sha256(len(prompt_bytes).to_bytes(8, "big") + prompt_bytes + LLM.encode()).hexdigest()
    assert KEY_VERSION == 2
    assert entry_digest("p", LLM) != earlier


def test_remembered_messages_give_the_same_key_as_a_whole_parse() -> None:
    """A history is canonicalized message by message, remembering each; the result is the
    one a parse of the whole prompt gives, whether its messages were seen before or not."""
    from llmcache_django.core import canonical

    prompts = [prompt for pair in [*DIFFERENT.values(), *SAME.values()] for prompt in pair]
    canonical._memo.clear()
    cold = [canonical_prompt(prompt) for prompt in prompts]
    warm = [canonical_prompt(prompt) for prompt in prompts]

    assert cold == warm == [canonical._canonical_list(prompt) for prompt in prompts]
    assert canonical._memo  # the messages were remembered


def test_a_message_holding_serialized_objects_is_canonicalized_whole() -> None:
    """A message whose fields hold ``dumps()`` objects of their own: the prompt cannot be cut
    between messages by text, so it is parsed whole (and nothing half-cut is remembered)."""
    nested = dumps([HumanMessage("inner")])[1:-1]
    prompt = history(QUESTION, AIMessage("Sunny.", additional_kwargs={"items": "x"}))
    prompt = prompt.replace('"items": "x"', f'"items": [{nested}, {nested}]')

    assert prompt.count('{"lc": 1, "type": "constructor", ') == 4
    assert canonical_prompt(prompt) == canonical_prompt(prompt) != prompt
    assert '"items":[{' in canonical_prompt(prompt)
