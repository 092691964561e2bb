"""English for the sentences the app writes from measured numbers (Why they differ, the model card)."""

from __future__ import annotations


def listing(items: list[str]) -> str:
    """Names joined as English: a; a and b; a, b and c (no serial comma, as every page writes it)."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def duration(seconds: float) -> str:
    """A time as people read it, to the minute or the second: "2h 05m", "7m 30s", "45s"."""
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def plural(n: int, word: str, many: str | None = None) -> str:
    """"1 epoch", "2 epochs", "0 images": the count and the word in the number it needs."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def one_in(shares: list[float]) -> str:
    """How often something happens, as "1 in 17" or "1 in 15 to 17", from the shares of cases it happens in."""
    ns = sorted({round(1 / s) for s in shares if s > 0})
    if not ns:
        return "none"
    return f"1 in {ns[0]}" if len(ns) == 1 else f"1 in {ns[0]} to {ns[-1]}"
