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


#: Seconds between a bar's updates when standard error is not a terminal (a log file):
#: a few lines per minute instead of one per tenth of a second.
LOG_UPDATE_SECONDS = 10.0


def bar(total: int, description: str, *, enabled: bool = True, unit: str = "it") -> tqdm:
    """A progress bar on standard error (drawn only when ``enabled``); close it when done.
    Redrawn every tenth of a second on a terminal, every :data:`LOG_UPDATE_SECONDS`
    elsewhere."""
    terminal = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        file=sys.stderr,
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        mininterval=0.1 if terminal else LOG_UPDATE_SECONDS,
    )
