"""The prompt box."""

from __future__ import annotations

from django import forms

EXAMPLE_PROMPT = "What does an LLM cache save me?"


class PromptForm(forms.Form):
    """One prompt for the chat model."""

    prompt = forms.CharField(
        max_length=2000,
        initial=EXAMPLE_PROMPT,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "autofocus": True}),
    )
