"""One fit of the playground, in a worker thread, held by the page.

The estimator's callback (after every iteration) takes a :class:`Snapshot` of the loop,
sends the frame, then asks :class:`Control` whether to go on: it waits out the pace,
blocks while the page has paused (one step lets one more iteration through), and ends
the fit when the page stops it (the model is kept) or cancels it (reset, a closed tab:
everything is dropped). At the first iteration the same callback starts K-means
(Lloyd's algorithm: ``network="nearest-centroid"``) from the fit's own initial centroids,
so both panels start from the same place; it then runs in step with the fit
(:mod:`~neural_kmeans.app.serve.companion`).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from neural_kmeans.app.data import resolve_clusters, resolve_threads, thread_limit
from neural_kmeans.app.errors import UsageError
from neural_kmeans.app.experiments import MethodRun, _estimator
from neural_kmeans.app.serve.companion import LloydCompanion
from neural_kmeans.app.serve.frames import Framer, Snapshot, contingency
from neural_kmeans.app.serve.params import Limits, RunParams
from neural_kmeans.app.serve.sources import PlaygroundData

#: The neural side's key in the page's messages (results.json names the method itself).
NEURAL = "neural-kmeans"

#: ``post(message) -> delivered``: hands a message to the page (blocking while its queue
#: is full); False once the page is gone.
Post = Callable[[dict[str, Any]], bool]


class Control:
    """The page's hold on a running fit: pace, pause, step, stop (keep) and cancel (drop)."""

    def __init__(self, speed: float, paused: bool = False) -> None:
        self._condition = threading.Condition()
        self.interval = 1.0 / speed if speed > 0 else 0.0
        self.paused = paused
        self.steps = 0
        self.stopped = False
        self.cancelled = False
        self._announced = False

    def _set(self, **values: Any) -> None:
        with self._condition:
            for name, value in values.items():
                setattr(self, name, value)
            self._condition.notify_all()

    def pause(self) -> None:
        self._set(paused=True, steps=0)

    def resume(self) -> None:
        self._set(paused=False, steps=0)

    def step(self) -> None:
        with self._condition:
            self.paused = True
            self.steps += 1
            self._condition.notify_all()

    def stop(self) -> None:
        self._set(stopped=True)

    def cancel(self) -> None:
        self._set(cancelled=True)

    def set_speed(self, speed: float) -> None:
        self._set(interval=1.0 / speed if speed > 0 else 0.0)

    @property
    def ending(self) -> bool:
        return self.stopped or self.cancelled

    def turn(self, since: float) -> str:
        """After the frame sent at ``since`` (perf_counter): ``"go"`` (one more iteration),
        ``"end"``, or ``"paused"`` once when a pause begins (the caller says so to the page
        and asks again, which then blocks until the page resumes, steps or ends)."""
        with self._condition:
            while True:
                if self.ending:
                    return "end"
                if self.paused:
                    if self.steps:
                        self.steps -= 1
                        self._announced = False  # the pause after this step is news again
                        return "go"
                    if not self._announced:
                        self._announced = True
                        return "paused"
                    self._condition.wait()
                    continue
                self._announced = False
                left = since + self.interval - time.perf_counter()
                if left <= 0:
                    return "go"
                self._condition.wait(left)


class FitRunner:
    """One run: neural-kmeans on the page's data, with K-means from the same start.

    Attributes
    ----------
    run : int
        The run's number in its session (every message carries it).
    neural : list of Snapshot
        Every iteration of the neural fit so far (index 0: the initial centroids).
    companion : LloydCompanion or None
        K-means beside it (its ``snapshots``), from the first iteration on.
    model, kmeans_model : NeuralKMeans or None
        The fitted models, once the run is done.
    outcome : str
        ``"running"``, then ``"done"``, ``"cancelled"`` or ``"failed"``.
    """

    def __init__(
        self,
        data: PlaygroundData,
        params: RunParams,
        run: int,
        limits: Limits,
        post: Post,
        on_end: Callable[[FitRunner], None],
        *,
        paused: bool = False,
    ) -> None:
        self.data = data
        self.params = params
        self.run = run
        self.framer = Framer(data, limits.resolution)
        self.control = Control(params.speed, paused=paused)
        self._post = post
        self._on_end = on_end
        self.neural: list[Snapshot] = []
        self.companion: LloydCompanion | None = None
        self.model: Any = None
        self._quit = threading.Event()  # ends the companion whatever happens
        self.runs: dict[str, MethodRun] = {}
        self.outcome = "running"
        self.network = ""
        self._callback_seconds = 0.0
        self._thread = threading.Thread(target=self._main, name=f"fit-{run}", daemon=True)

    # ------------------------------------------------------------------ the thread
    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def kmeans(self) -> list[Snapshot]:
        """Every iteration of K-means so far (index 0: the initial centroids)."""
        return [] if self.companion is None else self.companion.snapshots

    @property
    def kmeans_model(self) -> Any:
        return None if self.companion is None else self.companion.model

    def _stop_companion(self) -> bool:
        return self.control.cancelled or self._quit.is_set()

    def send(self, message: dict[str, Any]) -> bool:
        """Post ``message`` unless the run is cancelled; a page that is gone cancels it."""
        if self.control.cancelled:
            return False
        if not self._post(message):
            self.control.cancel()
            return False
        return True

    def _status(self, state: str) -> None:
        self.send({"type": "status", "run": self.run, "state": state})

    def _main(self) -> None:
        try:
            self._check()
            self._status("preparing" if self.params.features == "learned" else "running")
            with thread_limit(resolve_threads(0, self.data.x.size)):
                model = self._fit()
            if self.control.cancelled:
                self.outcome = "cancelled"
                return
            self._finish(model)
        except (UsageError, ValueError, TypeError, FloatingPointError) as error:
            message = " ".join(str(error).split())
            if isinstance(error, FloatingPointError):
                message += " (try a smaller learning rate)"
            self._fail(message)
        except Exception as error:  # a bug: the page says so, the server goes on
            traceback.print_exc(file=sys.stderr)
            self._fail(f"unexpected {type(error).__name__}: {error}")
        finally:
            self._quit.set()
            self._on_end(self)

    def _fail(self, message: str) -> None:
        self.outcome = "failed"
        self.send({"type": "error", "run": self.run, "message": message})

    def _check(self) -> None:
        """K against the data (as the command line checks it), then the estimator's own
        checks of its parameters and of the network against the data, before any work."""
        from neural_kmeans.core.networks import LEARNED_NETWORK, resolve_network_name
        from neural_kmeans.core.validation import (
            check_data_for_params,
            check_parameters,
            resolve_image_shape,
        )

        params, x = self.params, self.data.x
        resolve_clusters(self.data.split, params.n_clusters)
        model = _estimator(params.n_clusters, params.seed, params.config())
        check_parameters(model.get_params(deep=False), type(model).__name__)
        image_shape = resolve_image_shape(x.shape[1:], None)
        network = resolve_network_name(params.network, image_shape)
        if params.features == "learned":
            network = LEARNED_NETWORK
        check_data_for_params(model, x.shape[1:], x.shape[0], image_shape, network)
        self.network = str(network)
        self.send(self.framer.start(self.run, asdict(self.params), self.network))

    # ------------------------------------------------------------------ fitting
    def _fit(self) -> Any:
        params = self.params
        model = _estimator(
            params.n_clusters, params.seed, params.config(), callbacks=[self._on_iteration]
        )
        started = time.perf_counter()
        model.fit(self.data.x)
        seconds = time.perf_counter() - started - self._callback_seconds
        model.callbacks = None
        self.runs[NEURAL] = self._method_run(NEURAL, model, seconds)
        return model

    def _on_iteration(self, state: Any) -> bool:
        entered = time.perf_counter()
        try:
            if self.companion is None:
                initial = (state.initial_means / state.scale).cpu().numpy()
                self.neural.append(self.framer.initial(initial))
                self.companion = LloydCompanion(
                    self.data.x, initial, self.params, self.framer, self._stop_companion
                )
                if not self.send(self.framer.frame(self.run, self.neural[0], self.kmeans[0])):
                    return True
            snapshot = self.framer.snapshot(state)
            self.neural.append(snapshot)
            kmeans = self.companion.upto(snapshot.iteration)
            if not self.send(self.framer.frame(self.run, snapshot, kmeans)):
                return True
            return self._wait_turn()
        finally:
            self._callback_seconds += time.perf_counter() - entered

    def _wait_turn(self) -> bool:
        """True to end the fit: after the pace, a pause, a step; stopped or cancelled."""
        sent, announced = time.perf_counter(), False
        while True:
            decision = self.control.turn(sent)
            if decision == "paused":
                announced = True
                self._status("paused")
                continue
            if decision == "go" and announced and not self.control.paused:
                self._status("running")
            return decision == "end"

    def _method_run(self, method: str, model: Any, seconds: float) -> MethodRun:
        labels = np.asarray(model.labels_)
        return MethodRun(
            method=method,
            seed=self.params.seed,
            n_clusters=self.params.n_clusters,
            train_labels=labels,
            test_labels=None,
            train=self.framer.scores(labels),
            test=None,
            seconds=seconds,
            n_iter=int(model.n_iter_),
            inertia=float(model.inertia_) * self.data.split.scale**2,
            model=model,
        )

    # ------------------------------------------------------------------ the end
    def _finish(self, model: Any) -> None:
        """Let K-means end, keep both models (the exports are ready from now on) and tell
        the page."""
        self.companion.finish()
        companion = self.companion
        self.runs["kmeans"] = self._method_run("kmeans", companion.model, companion.seconds)
        self.model = model
        self.outcome = "done"
        self.send(
            {
                "type": "done",
                "run": self.run,
                "stopped": self.control.stopped,
                "converged": bool(model.converged_),
                "n_iter": int(model.n_iter_),
                "kmeans": {
                    "n_iter": int(self.kmeans_model.n_iter_),
                    "converged": bool(self.kmeans_model.converged_),
                    "history": [
                        {"iteration": s.iteration, "record": s.record, "scores": s.scores}
                        for s in self.kmeans[1:]
                    ],
                    "final": self.framer.encode(self.kmeans[-1]),
                },
                "scores": {name: run.train for name, run in self.runs.items()},
                "seconds": {name: run.seconds for name, run in self.runs.items()},
                "contingency": contingency(self.data, self.runs[NEURAL].train_labels),
                "kmeans_contingency": contingency(self.data, self.runs["kmeans"].train_labels),
            }
        )
