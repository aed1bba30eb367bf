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
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from neural_kmeans.core import distributed, progress
from neural_kmeans.core.assignment import Assignment, assign_and_accumulate
from neural_kmeans.core.centroids import inertia
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.state import (
    Callback,
    Checkpoints,
    LoopParts,
    LoopSettings,
    LoopState,
)
from neural_kmeans.core.validation import (
    check_finite_centroids,
    check_network_outputs,
    check_training_loss,
)

#: Samples on which each iteration's network is checked for non-finite outputs.
PROBE_SAMPLES = 256


def start_state(
    parts: LoopParts, samples: SampleBatches, rng: np.random.RandomState, restart: int = 0
) -> LoopState:
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
        restart=restart,
    )


def assign(
    network: nn.Module,
    samples: SampleBatches,
    n_clusters: int,
    batch_size: int,
    centroids: torch.Tensor | None = None,
    previous: Assignment | None = None,
) -> tuple[Assignment, Assignment]:
    """Step 3 over all the samples; in a process group, over this rank's shard. With
    ``centroids``, the same pass measures the inertia against them; with ``previous``,
    the last pass's totals over the same samples, only the samples whose cluster
    changed are re-summed. Returns the whole data's assignment and this process's own
    (the next pass's ``previous``; the same object when alone)."""
    rank, size = distributed.rank_and_size()
    start, stop = distributed.shard_bounds(samples.n_samples, rank, size)
    local = assign_and_accumulate(
        network, samples, n_clusters, batch_size, start, stop, centroids, previous
    )
    if size == 1:
        return local, local
    return distributed.combine_assignments(local, samples.n_samples), local


def run_loop(
    state: LoopState,
    parts: LoopParts,
    samples: SampleBatches,
    settings: LoopSettings,
    *,
    callbacks: Sequence[Callback] = (),
    checkpoints: Checkpoints | None = None,
) -> LoopState:
    """Steps 2-4 from ``state`` until the assignment settles or ``max_iter`` is reached,
    then the final assignment (see :class:`LoopParts`) and the final inertia.

    Returns the same ``state``, updated. Raises
    :class:`~neural_kmeans.core.validation.DivergenceError` before a non-finite loss,
    network output or centroid reaches the state or a checkpoint.
    """
    probe = samples.as_input(samples.flat_batch(0, min(samples.n_samples, PROBE_SAMPLES)))
    strict = False
    for iteration in range(state.iteration + 1, settings.max_iter + 1):
        record, strict = _iteration(state, parts, samples, settings, iteration, probe)
        if settings.verbose:
            _print_record(record)
        stop = any(bool(callback(state)) for callback in callbacks)
        if checkpoints is not None:
            checkpoints.save(state, state.converged or stop)
            checkpoints.raise_if_interrupted(iteration)
        if state.converged or stop:
            break
    if parts.final_assignment and not strict and state.iteration > 0:
        # The last update moved the centroids after the labels were given: label the
        # samples once more with the final centroids, as scikit-learn's KMeans does
        # (the same pass measures the final inertia).
        parts.train(state, samples)
        n_clusters = state.centroids.shape[0]
        final, state.totals = assign(
            state.network, samples, n_clusters, settings.batch_size, state.means, state.totals
        )
        state.labels, state.inertia = final.labels, final.inertia
    else:
        state.inertia = _final_inertia(state, samples, settings.batch_size)
    state.network.eval()
    return state


def _iteration(
    state: LoopState,
    parts: LoopParts,
    samples: SampleBatches,
    settings: LoopSettings,
    iteration: int,
    probe: torch.Tensor,
) -> tuple[dict, bool]:
    """One iteration (steps 2, 3, 4); updates ``state``, returns its record and whether
    no label changed (strict convergence)."""
    started = time.perf_counter()
    trained = parts.train(state, samples)  # step 2
    check_training_loss(iteration, trained["loss"], state.network, settings.learning_rate)
    check_network_outputs(iteration, state.network, [probe])
    n_clusters = state.centroids.shape[0]
    assignment, totals = assign(  # step 3
        state.network, samples, n_clusters, settings.batch_size, previous=state.totals
    )
    labels, previous = assignment.labels, state.labels
    changed = 1.0 if previous is None else float((labels != previous).double().mean())
    sizes = assignment.counts.cpu().tolist()  # before step 4 relocates empty clusters
    centroids, means, inertia, relocated = parts.update(  # step 4
        state, assignment, samples, settings.batch_size
    )
    check_finite_centroids(iteration, centroids, inertia)
    shift = float(((centroids - state.centroids.to(centroids)) ** 2).sum())
    strict = previous is not None and bool(torch.equal(labels, previous))
    record = {
        "iteration": iteration,
        **trained,
        "changed": changed,
        "center_shift": shift / state.scale**2,
        "inertia": inertia / state.scale**2,
        "sizes": sizes,
        "empty_repaired": relocated,
        "seconds": time.perf_counter() - started,
    }
    if settings.record_centroids:
        record["centroids"] = (means / state.scale).cpu().numpy()
    state.centroids, state.means, state.labels = centroids, means, labels
    state.totals, state.iteration = totals, iteration
    state.history.append(record)
    state.converged = strict or shift <= settings.tol
    return record, strict


def _final_inertia(state: LoopState, samples: SampleBatches, batch_size: int) -> float:
    """The (weighted) sum of squared distances of the samples to their clusters'
    centroids (``state.means``), in the scaled units; in a process group, each process
    measures its shard."""
    rank, size = distributed.rank_and_size()
    start, stop = distributed.shard_bounds(samples.n_samples, rank, size)
    value = inertia(samples, state.labels, state.means, batch_size, start, stop)
    return distributed.sum_over_processes(value)


def _print_record(record: dict) -> None:
    progress.line(
        f"iteration {record['iteration']:3d}  loss {record['loss']:.4f}  "
        f"changed {record['changed']:.4f}  inertia {record['inertia']:.6g}  "
        f"({record['seconds']:.2f} s)"
    )
