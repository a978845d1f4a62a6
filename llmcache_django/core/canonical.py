"""The canonical form of a chat prompt: what the provider sees of the messages.

A chat model's prompt reaches the cache as LangChain's ``dumps(messages)``, which holds
more than the provider is sent: ids, usage, response metadata (our hit marker included),
the ``total_cost`` LangChain adds to a hit. Keys are derived from this form instead. The
JSON is read as plain data (orjson); nothing in it is ever loaded as a LangChain object.

An agent or a chat sends the same history again and again, one or two messages longer
each time, so each message's canonical form is remembered (keyed by its ``dumps()`` text):
a lookup parses only the messages this process has not seen yet.
"""

from __future__ import annotations

from typing import Any

import orjson

#: message ``type`` in ``dumps()`` output (chunks included) -> (canonical type, class name).
_MESSAGE_CLASSES: dict[str, tuple[str, str]] = {
    "ai": ("ai", "AIMessage"),
    "AIMessageChunk": ("ai", "AIMessage"),
    "human": ("human", "HumanMessage"),
    "HumanMessageChunk": ("human", "HumanMessage"),
    "system": ("system", "SystemMessage"),
    "SystemMessageChunk": ("system", "SystemMessage"),
    "tool": ("tool", "ToolMessage"),
    "ToolMessageChunk": ("tool", "ToolMessage"),
    "function": ("function", "FunctionMessage"),
    "FunctionMessageChunk": ("function", "FunctionMessage"),
    "chat": ("chat", "ChatMessage"),
    "ChatMessageChunk": ("chat", "ChatMessage"),
}
#: message ``type`` -> (canonical type, the serialized ``id`` of its message class).
MESSAGE_KINDS: dict[str, tuple[str, list[str]]] = {
    type_: (kind, ["langchain", "schema", "messages", class_name])
    for type_, (kind, class_name) in _MESSAGE_CLASSES.items()
}
#: Message fields a provider is sent, besides content, type and an answer's tool calls.
PROVIDER_FIELDS = ("name", "role", "tool_call_id", "status", "additional_kwargs")
#: How ``dumps()`` starts each serialized message (``json.dumps``' default separators). It
#: cannot occur inside a JSON string (quotes there are escaped), so splitting a prompt on it
#: cuts between messages, or inside a nested serialized object: then there are more pieces
#: than messages, and the prompt is canonicalized whole.
_MESSAGE_START = '{"lc": 1, "type": "constructor", '
_BETWEEN_MESSAGES = ", " + _MESSAGE_START
#: How much this process remembers of messages and their canonical forms, in characters
#: (all of it forgotten when full): a few MB, whatever the messages hold (images, files).
MEMO_CHARS_LIMIT = 4_000_000
_memo: dict[str, str] = {}
_memo_chars = 0
#: Up to this many new messages (or a quarter of them) are parsed one by one; more, and
#: the prompt is parsed in one go.
PARSE_ALONE = 4
_ERRORS = (orjson.JSONDecodeError, orjson.JSONEncodeError, TypeError, KeyError, ValueError, AttributeError)


def canonical_prompt(prompt: str) -> str:
    """What the provider sees of ``prompt``, in one canonical JSON form.

    A ``dumps(messages)`` prompt becomes the messages with only their provider-visible
    fields (type/role, content, name, tool calls, ``tool_call_id``, status and
    ``additional_kwargs``), keys sorted; ids, ``usage_metadata`` and ``response_metadata``
    are left out, and so is the ``index`` a streamed answer's content blocks carry. Any
    other prompt (a text model's) is returned unchanged. The result is a fixed point
    (canonicalizing it again gives it back), so two prompts share an entry exactly when
    their canonical forms are equal.
    """
    if not prompt.startswith("[{"):
        return prompt
    try:
        if prompt.startswith("[" + _MESSAGE_START) and prompt.endswith("}]"):
            try:
                return _canonical_pieces(prompt)
            except _ERRORS:
                pass  # a piece cut inside a nested object, or not a message: see the whole
        return _canonical_list(prompt)
    except _ERRORS:
        return prompt  # not a list of serialized messages: the prompt as it is


def _canonical_pieces(prompt: str) -> str:
    """``dumps()`` output, message by message: remembered ones looked up, the others parsed."""
    pieces = prompt[1:-1].split(_BETWEEN_MESSAGES)
    canonical = [_memo.get(piece) for piece in pieces]
    missing = [index for index, known in enumerate(canonical) if known is None]
    if len(missing) > max(PARSE_ALONE, len(pieces) // 4):
        items = orjson.loads(prompt)  # one parse of the whole, which also checks the cut
        if len(items) != len(pieces):
            return _canonical_list(prompt)  # cut inside a nested object: nothing to remember
        for index in missing:
            canonical[index] = _remember(pieces[index], _canonical_message(items[index]))
    else:
        for index in missing:  # a half-cut piece does not parse: the whole prompt is parsed then
            piece = pieces[index]
            item = orjson.loads(piece if piece.startswith(_MESSAGE_START) else _MESSAGE_START + piece)
            canonical[index] = _remember(piece, _canonical_message(item))
    return "[" + ",".join(canonical) + "]"  # type: ignore[arg-type]


def _remember(piece: str, message: dict[str, Any]) -> str:
    global _memo_chars
    known = orjson.dumps(message, option=orjson.OPT_SORT_KEYS).decode()
    size = len(piece) + len(known)
    if _memo_chars + size > MEMO_CHARS_LIMIT:
        _memo.clear()
        _memo_chars = 0
    if size <= MEMO_CHARS_LIMIT // 8:  # a huge message is parsed each time, not kept
        _memo[piece] = known
        _memo_chars += size
    return known


def _canonical_list(prompt: str) -> str:
    messages = [_canonical_message(item) for item in orjson.loads(prompt)]
    return orjson.dumps(messages, option=orjson.OPT_SORT_KEYS).decode()


def _canonical_message(item: Any) -> dict[str, Any]:
    if item["lc"] != 1 or item["type"] != "constructor":
        raise ValueError("not a serialized object")
    fields = item["kwargs"]
    kind, class_path = MESSAGE_KINDS[fields["type"]]
    kwargs = {"type": kind, "content": fields["content"]}
    for name in PROVIDER_FIELDS:
        value = fields.get(name)
        if value is not None and value != {}:  # an empty additional_kwargs is no field at all
            kwargs[name] = value
    if kind == "ai":
        _canonical_answer(fields, kwargs)
    return {"lc": 1, "type": "constructor", "id": class_path, "kwargs": kwargs}


def _canonical_answer(fields: dict[str, Any], kwargs: dict[str, Any]) -> None:
    content = kwargs["content"]
    if not isinstance(content, str):
        # A streamed answer's blocks carry the stream's ``index``; the same answer invoked does not.
        kwargs["content"] = [
            {k: v for k, v in block.items() if k != "index"} if isinstance(block, dict) else block for block in content
        ]
    for calls in ("tool_calls", "invalid_tool_calls"):
        if fields.get(calls):
            kwargs[calls] = [{"name": c.get("name"), "args": c.get("args"), "id": c.get("id")} for c in fields[calls]]
