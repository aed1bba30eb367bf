"""The one way the library reports progress: tqdm bars for long work, one printer for lines.

Both write to standard error at the time of the call (so captured or redirected
streams are respected), and lines go above any bar that is being drawn.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def line(text: str) -> None:
    """Print one line of progress on standard error, above any progress bar."""
    tqdm.write(text, file=sys.stderr)


def bar(total: int, description: str, *, enabled: bool = True, unit: str = "it") -> tqdm:
    """A progress bar on standard error (drawn only when ``enabled``); close it when done."""
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
    )
