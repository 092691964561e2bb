"""English for the sentences the app writes from measured numbers (Why they differ, the model card)."""

from __future__ import annotations


def listing(items: list[str]) -> str:
    """Names joined as English: a; a and b; a, b and c (no serial comma, as every page writes it)."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
