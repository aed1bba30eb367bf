"""The neural K-means loop: one function that every mode configures with its parts.

::

    state = parts.start(samples, rng)                  # step 1: the first clusters
    repeat
        parts.train(state, samples)                    # step 2: train the network
        assignment = assign(state.network, samples)    # step 3: every sample's cluster
        parts.update(state, assignment, samples)       # step 4: move the centroids
    until the assignment settles or max_iter iterations

``features="pixels"`` passes :class:`~neural_kmeans.core.initialization.CentroidStart`,
:class:`~neural_kmeans.core.training.CentroidTeacher` and
:class:`~neural_kmeans.core.centroids.InputSpace`; ``features="learned"`` passes the
parts of :mod:`neural_kmeans.representation.self_labelling`. Everything else is
shared: the numerical checks, the history, the verbose lines, the callbacks, the
checkpoints (through any object with ``save`` and ``raise_if_interrupted``), and the
data-parallel assignment under ``torchrun``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from neural_kmeans.core import distributed, progress
from neural_kmeans.core.assignment import Assignment, assign_and_accumulate
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.validation import (
    check_finite_centroids,
    check_network_outputs,
    check_training_loss,
)

#: Samples on which each iteration's network is checked for non-finite outputs.
PROBE_SAMPLES = 256


@dataclass
class LoopState:
    """Everything the loop holds between iterations; callbacks and checkpoints get it.

    Attributes
    ----------
    network : torch.nn.Module
        The classifier (step 2 trains it, step 3 asks it).
    centroids : torch.Tensor of shape (K, m), float64
        The centroids in the loop's space: the samples' own (scaled) space for
        ``features="pixels"``, the learned embedding for ``"learned"``.
    means : torch.Tensor of shape (K, d), float64
        The clusters' centroids in the samples' space, scaled like the batches
        (equal to ``centroids`` for ``"pixels"``).
    labels : torch.Tensor of shape (n,), int64, or None
        The last assignment (None before the first, unless step 1 gave one).
    initial_means : torch.Tensor of shape (K, d), float64
        ``means`` as step 1 left them.
    scale : float
        The factor the samples were multiplied by (1/255 for uint8, else 1).
    optimizer : torch.optim.Optimizer or None
        Kept across iterations (None where step 2 makes its own).
    iteration : int
        The last finished iteration (0 before the first).
    history : list of dict
        One record per iteration: ``iteration``, ``loss``, ``changed``, ``inertia``
        (input units), ``sizes``, ``empty_repaired``, ``seconds``, what step 2 adds,
        and ``centroids`` (input units) when recorded.
    converged : bool
        Whether the last iteration changed at most ``tol`` of the labels.
    extras : dict of str to torch.Tensor
        Data the parts keep (the learned embedding, the neighbour graph, ...); saved
        with checkpoints.
    info : dict
        JSON-able notes the parts keep (stage timings, ...); saved with checkpoints.
    """

    network: nn.Module
    centroids: torch.Tensor
    means: torch.Tensor
    labels: torch.Tensor | None
    initial_means: torch.Tensor
    scale: float
    optimizer: torch.optim.Optimizer | None = None
    iteration: int = 0
    history: list[dict] = field(default_factory=list)
    converged: bool = False
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def record(self) -> dict | None:
        """The last iteration's history record (None before the first)."""
        return self.history[-1] if self.history else None

    @property
    def cluster_centers(self) -> np.ndarray:
        """The clusters' centroids in the samples' own units, shape (K, d)."""
        return (self.means / self.scale).cpu().numpy()


#: ``callback(state) -> stop?``: called after every iteration; True stops the loop.
Callback = Callable[[LoopState], "bool | None"]


@dataclass
class FirstClusters:
    """What step 1 gives: ``centroids`` (K, m) in the loop's space, their ``means``
    (K, d) in the samples' scaled space, the first ``labels`` (n,) or None, and the
    ``extras`` and ``info`` the other parts need (see :class:`LoopState`)."""

    centroids: torch.Tensor
    means: torch.Tensor
    labels: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class Start(Protocol):
    """Step 1: the first clusters."""

    def __call__(self, samples: SampleBatches, rng: np.random.Generator) -> FirstClusters: ...


class Train(Protocol):
    """Step 2: train ``state.network``; returns at least ``{"loss": float}`` (more
    entries go into the history record)."""

    def __call__(self, state: LoopState, samples: SampleBatches) -> dict[str, Any]: ...


class Update(Protocol):
    """Step 4: the new centroids in the loop's space, their means in the samples' space,
    the inertia around those means (scaled units) and the repaired empty clusters."""

    def __call__(
        self, state: LoopState, assignment: Assignment, samples: SampleBatches, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, float, list[int]]: ...


class Checkpoints(Protocol):
    """Where the loop's state goes after each iteration (see :mod:`neural_kmeans.io.checkpoint`)."""

    def save(self, state: LoopState, rng: np.random.Generator, done: bool) -> None: ...

    def raise_if_interrupted(self, iteration: int) -> None: ...


@dataclass(frozen=True)
class LoopParts:
    """What makes one mode of the loop: its steps 1, 2 and 4 (step 3 is shared)."""

    start: Start
    train: Train
    update: Update


@dataclass(frozen=True)
class LoopSettings:
    """The loop's knobs: ``max_iter``, ``tol``, ``batch_size``, ``learning_rate`` (for
    the divergence messages), ``verbose`` and ``record_centroids``."""

    max_iter: int
    tol: float
    batch_size: int
    learning_rate: float
    verbose: int = 0
    record_centroids: bool = False


def start_state(parts: LoopParts, samples: SampleBatches, rng: np.random.Generator) -> LoopState:
    """Step 1: a fresh state from ``parts.start``; the caller then sets its ``network``
    (and ``optimizer``), built after step 1 so that step 1's random draws come first."""
    first = parts.start(samples, rng)
    return LoopState(
        network=nn.Identity(),
        centroids=first.centroids,
        means=first.means,
        labels=first.labels,
        initial_means=first.means,
        scale=samples.scale,
        extras=first.extras,
        info=first.info,
    )


def assign(
    network: nn.Module, samples: SampleBatches, n_clusters: int, batch_size: int
) -> Assignment:
    """Step 3 over all the samples; in a process group, over this rank's shard."""
    rank, size = distributed.rank_and_size()
    if size == 1:
        return assign_and_accumulate(network, samples, n_clusters, batch_size)
    start, stop = distributed.shard_bounds(samples.n_samples, rank, size)
    local = assign_and_accumulate(network, samples, n_clusters, batch_size, start, stop)
    return distributed.combine_assignments(local, samples.n_samples)


def run_loop(
    state: LoopState,
    parts: LoopParts,
    samples: SampleBatches,
    settings: LoopSettings,
    rng: np.random.Generator,
    *,
    callbacks: Sequence[Callback] = (),
    checkpoints: Checkpoints | None = None,
) -> LoopState:
    """Steps 2-4 from ``state`` until the assignment settles or ``max_iter`` is reached.

    Returns the same ``state``, updated. Raises
    :class:`~neural_kmeans.core.validation.DivergenceError` before a non-finite loss,
    network output or centroid reaches the state or a checkpoint.
    """
    n_clusters = state.centroids.shape[0]
    probe = samples.as_input(samples.flat_batch(0, min(samples.n_samples, PROBE_SAMPLES)))
    for iteration in range(state.iteration + 1, settings.max_iter + 1):
        started = time.perf_counter()
        trained = parts.train(state, samples)  # step 2
        check_training_loss(iteration, trained["loss"], state.network, settings.learning_rate)
        check_network_outputs(iteration, state.network, [probe])
        assignment = assign(state.network, samples, n_clusters, settings.batch_size)  # step 3
        labels = assignment.labels
        previous = state.labels
        changed = 1.0 if previous is None else float((labels != previous).double().mean())
        sizes = assignment.counts.cpu().tolist()  # before step 4 repairs empty clusters
        centroids, means, inertia, repaired = parts.update(  # step 4
            state, assignment, samples, settings.batch_size
        )
        check_finite_centroids(iteration, centroids, inertia)
        record = {
            "iteration": iteration,
            **trained,
            "changed": changed,
            "inertia": inertia / state.scale**2,
            "sizes": sizes,
            "empty_repaired": repaired,
            "seconds": time.perf_counter() - started,
        }
        if settings.record_centroids:
            record["centroids"] = (means / state.scale).cpu().numpy()
        state.centroids, state.means, state.labels = centroids, means, labels
        state.iteration = iteration
        state.history.append(record)
        state.converged = changed <= settings.tol
        if settings.verbose:
            _print_record(record)
        stop = any(bool(callback(state)) for callback in callbacks)
        if checkpoints is not None:
            checkpoints.save(state, rng, state.converged or stop)
            checkpoints.raise_if_interrupted(iteration)
        if state.converged or stop:
            break
    state.network.eval()
    return state


def _print_record(record: dict) -> None:
    progress.line(
        f"iteration {record['iteration']:3d}  loss {record['loss']:.4f}  "
        f"changed {record['changed']:.4f}  inertia {record['inertia']:.6g}  "
        f"({record['seconds']:.2f} s)"
    )
