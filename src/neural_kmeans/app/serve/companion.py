"""K-means beside the neural fit: Lloyd's algorithm (``network="nearest-centroid"``) from
the neural fit's own initial centroids, in its own thread, kept in step with it.

The neural fit asks for K-means' iteration i when its own iteration i ends
(:meth:`LloydCompanion.upto`); K-means may run one iteration ahead, so that the two
overlap on a machine of two cores or more, and never further (a long neural run never
waits for a long K-means run to be computed first). When the neural fit ends, K-means
runs on to its own end (:meth:`LloydCompanion.finish`), or stops at once when the run is
cancelled.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from neural_kmeans.app.experiments import _estimator
from neural_kmeans.app.serve.frames import Framer, Snapshot
from neural_kmeans.app.serve.params import RunParams

#: Iterations K-means may run ahead of the neural fit.
AHEAD = 1


class LloydCompanion:
    """Lloyd's algorithm from ``initial`` on ``x``, one snapshot per iteration.

    Attributes
    ----------
    snapshots : list of Snapshot
        Index 0: the initial centroids; index i: iteration i.
    model : NeuralKMeans or None
        The fitted model, once finished.
    seconds : float
        Wall time of the fit, less the snapshots and the waits.
    """

    def __init__(
        self,
        x: np.ndarray,
        initial: np.ndarray,
        params: RunParams,
        framer: Framer,
        cancelled: Callable[[], bool],
    ) -> None:
        self.snapshots: list[Snapshot] = [framer.initial(initial)]
        self.model: Any = None
        self.seconds = 0.0
        self._framer = framer
        self._cancelled = cancelled
        self._condition = threading.Condition()
        self._allowed = AHEAD
        self._ended = False
        self._error: BaseException | None = None
        self._outside = 0.0  # seconds in the callback: snapshots and waits
        config = replace(params.config(), network="nearest-centroid", features="pixels")
        self._model = _estimator(
            params.n_clusters, params.seed, config, init=initial, callbacks=[self._keep]
        )
        self._thread = threading.Thread(
            target=self._fit, args=(x,), name="kmeans-companion", daemon=True
        )
        self._thread.start()

    def _fit(self, x: np.ndarray) -> None:
        started = time.perf_counter()
        try:
            self._model.fit(x)
            self._model.callbacks = None
            self.model = self._model
            self.seconds = time.perf_counter() - started - self._outside
        except BaseException as error:  # handed to the neural fit's thread
            self._error = error
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()

    def _keep(self, state: Any) -> bool:
        """After each K-means iteration: keep it, then wait for the neural fit's turn."""
        entered = time.perf_counter()
        snapshot = self._framer.snapshot(state)
        with self._condition:
            self.snapshots.append(snapshot)
            self._condition.notify_all()
            while self._allowed <= state.iteration and not self._cancelled():
                self._condition.wait(0.25)
        self._outside += time.perf_counter() - entered
        return self._cancelled()

    def upto(self, iteration: int) -> Snapshot:
        """K-means' iteration ``iteration`` (its last, when it ended before), waiting for it;
        lets K-means compute the next one meanwhile."""
        with self._condition:
            self._allowed = max(self._allowed, iteration + AHEAD)
            self._condition.notify_all()
            while len(self.snapshots) <= iteration and not self._ended:
                self._condition.wait(0.25)
                if self._cancelled():
                    break
        self._raise()
        return self.snapshots[min(iteration, len(self.snapshots) - 1)]

    def finish(self) -> None:
        """Let K-means run to its own end and wait for it."""
        with self._condition:
            self._allowed = math.inf
            self._condition.notify_all()
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
