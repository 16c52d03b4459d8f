"""English words that follow a count: "1 recipient", "2 recipients", "1 person"."""

from __future__ import annotations

IRREGULAR = {"person": "people", "is": "are", "was": "were", "gets": "get"}


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """The word as it goes with `count`: the singular for exactly 1, else the plural."""
    if count == 1:
        return singular
    return plural_form or IRREGULAR.get(singular) or singular + "s"


def counted(count: int, singular: str, plural_form: str | None = None) -> str:
    """The count and its word: counted(1, "recipient") == "1 recipient"."""
    return f"{count} {plural(count, singular, plural_form)}"
