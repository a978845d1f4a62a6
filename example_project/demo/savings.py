"""The tokens the cache saved this visitor, kept in their session."""

from __future__ import annotations

from django.contrib.sessions.backends.base import SessionBase

from example_project.demo.ask import Answer

SESSION_KEY = "llmcache_demo_tokens_saved"


def add_tokens_saved(session: SessionBase, answer: Answer | None) -> int:
    """Add what `answer` saved to the session's tally and return the new tally."""
    tokens_saved = int(session.get(SESSION_KEY, 0))
    if answer is not None and answer.tokens_saved:
        tokens_saved += answer.tokens_saved
        session[SESSION_KEY] = tokens_saved
    return tokens_saved


def start_tally(session: SessionBase) -> None:
    """Make sure the visitor has a session before a streamed answer: its cookie goes out
    with the response headers, before the answer is known."""
    session.setdefault(SESSION_KEY, 0)
