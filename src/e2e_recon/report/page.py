"""What the sections of the report share: the test sets' titles and the note paragraph."""

from __future__ import annotations

import html

__all__ = ["SET_TITLES", "note"]

SET_TITLES = {"natural": "Natural images", "shapes": "Artificial shapes", "letters": "Letters"}


def note(text: str) -> str:
    """A short grey note: what a section shows, or why it shows nothing."""
    return f'<p class="note">{html.escape(text)}</p>'
