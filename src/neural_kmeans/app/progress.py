"""Progress on standard error: a tqdm bar on a terminal, else one line per iteration
(through :mod:`neural_kmeans.core.progress`, the library's one progress mechanism)."""

from __future__ import annotations

import sys
from typing import Any

from neural_kmeans.app import experiments as ex
from neural_kmeans.core import progress


class ConsoleReporter(ex.Reporter):
    """Progress on standard error: a tqdm bar on a terminal, else one line per iteration.

    Parameters
    ----------
    quiet : bool
        Print nothing.
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._bar: Any = None

    @property
    def interactive(self) -> bool:
        """Whether to draw progress bars (not quiet, and standard error is a terminal)."""
        isatty = getattr(sys.stderr, "isatty", None)
        return not self.quiet and bool(isatty and isatty())

    def message(self, text: str) -> None:
        if not self.quiet:
            progress.line(text)

    def start_fit(self, label: str, max_iter: int) -> ex.Callback | None:
        if self.quiet:
            return None
        if max_iter == 0:
            self.message(f"[{label}] fitting")
            return None
        if self.interactive:
            self._bar = bar = progress.bar(max_iter, label, unit="iter")

            def update(state: Any) -> bool:
                record = state.record
                bar.set_postfix_str(
                    f"loss {record['loss']:.4f}, changed {record['changed']:.4f}, "
                    f"inertia {record['inertia']:.5g}",
                    refresh=False,
                )
                bar.update(1)
                return False

            return update

        def log(state: Any) -> bool:
            record = state.record
            self.message(
                f"[{label}] iteration {state.iteration}/{max_iter}  loss {record['loss']:.4f}  "
                f"changed {record['changed']:.4f}  inertia {record['inertia']:.6g}  "
                f"({record['seconds']:.2f} s)"
            )
            return False

        return log

    def end_fit(self, label: str, run: ex.MethodRun | None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
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
        """Close a progress bar left open (after an error)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
