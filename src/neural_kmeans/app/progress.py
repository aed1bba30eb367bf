"""Progress on standard error: where a command is and about how long it has left.

On a terminal, a bar per fit (its iterations) under a bar of the command's fits with
tqdm's estimate of the time left; elsewhere one line per iteration and per fit, each
fit's line with ``fit i/N`` and the time left (the mean of the fits so far, times the
fits to go). Everything goes through :mod:`neural_kmeans.core.progress`, the library's
one progress mechanism; ``--quiet`` silences it. Inertias are in the command line's
one unit: the samples scaled to [0, 1] (uint8 divided by 255).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from neural_kmeans.app import experiments as ex
from neural_kmeans.core import progress


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ConsoleReporter(ex.Reporter):
    """Progress of a command on standard error (see the module's notes).

    Parameters
    ----------
    quiet : bool
        Print nothing.
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.scale = 1.0  # the factor from the data's units to the command line's
        self._bar: Any = None
        self._fits: Any = None
        self._planned = self._done = 0
        self._spent = 0.0
        self._started = 0.0

    @property
    def interactive(self) -> bool:
        """Whether to draw progress bars (not quiet, and standard error is a terminal)."""
        isatty = getattr(sys.stderr, "isatty", None)
        return not self.quiet and bool(isatty and isatty())

    def message(self, text: str) -> None:
        if not self.quiet:
            progress.line(text)

    def plan(self, fits: int) -> None:
        self._planned, self._done, self._spent = fits, 0, 0.0
        if self.interactive and fits > 1:
            self._fits = progress.bar(fits, "fits", unit="fit")

    def _where(self) -> str:
        """``fit i/N, about T left`` while a plan runs, else nothing."""
        if self._planned <= 1:
            return ""
        where = f"fit {self._done + 1}/{self._planned}"
        if self._done:
            left = self._spent / self._done * (self._planned - self._done)
            where += f", about {_duration(left)} left"
        return where + ": "

    def start_fit(self, label: str, max_iter: int) -> ex.Callback | None:
        self._started = time.perf_counter()
        if self.quiet:
            return None
        if max_iter == 0:
            self.message(f"[{self._where()}{label}] fitting")
            return None
        scale = self.scale
        if self.interactive:
            self._bar = bar = progress.bar(max_iter, label, unit="iter")

            def update(state: Any) -> bool:
                record = state.record
                bar.set_postfix_str(
                    f"loss {record['loss']:.4f}, changed {record['changed']:.4f}, "
                    f"inertia {record['inertia'] * scale**2:.5g}",
                    refresh=False,
                )
                bar.update(1)
                return False

            return update
        prefix = self._where()

        def log(state: Any) -> bool:
            record = state.record
            self.message(
                f"[{prefix}{label}] iteration {state.iteration}/{max_iter}  loss "
                f"{record['loss']:.4f}  changed {record['changed']:.4f}  inertia "
                f"{record['inertia'] * scale**2:.6g}  ({record['seconds']:.2f} s)"
            )
            return False

        return log

    def end_fit(self, label: str, run: ex.MethodRun | None) -> None:
        self._spent += time.perf_counter() - self._started
        self._done += 1
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._fits is not None:
            self._fits.update(1)
        if self.quiet or run is None:
            return
        split = "test" if run.test is not None else "train"
        scores = getattr(run, split)
        score = "" if scores is None else f", {split} acc {scores['acc']:.3f}"
        self.message(
            f"[{label}] done: {run.n_iter} iterations in {run.seconds:.2f} s, "
            f"inertia {run.inertia:.6g}{score}"
        )

    def close(self) -> None:
        """Close the progress bars left open (at the end, or after an error)."""
        for bar in (self._bar, self._fits):
            if bar is not None:
                bar.close()
        self._bar = self._fits = None
