"""The state of the neural K-means loop and the parts a mode configures it with.

:class:`LoopState` is what the loop holds between iterations (callbacks and checkpoints
receive it); :class:`LoopParts` are a mode's steps 1, 2 and 4; :class:`LoopSettings`
its knobs. The loop itself is :func:`neural_kmeans.core.loop.run_loop`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from neural_kmeans.core.assignment import Assignment
from neural_kmeans.core.samples import SampleBatches


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
        (input units), ``center_shift`` (the sum of the centroids' squared moves, input
        units), ``sizes``, ``empty_repaired``, ``seconds``, what step 2 adds, and
        ``centroids`` (input units) when recorded.
    converged : bool
        Whether the last iteration changed no label or moved the centroids by at most
        the tolerance.
    extras : dict of str to torch.Tensor
        Data the parts keep (the learned embedding, the neighbour graph, ...); saved
        with checkpoints.
    info : dict
        JSON-able notes the parts keep (stage timings, ...); saved with checkpoints.
    restart : int
        Which of the ``n_init`` runs this is (from 0).
    inertia : float or None
        Set when the loop ends: the (weighted) sum of squared distances of the samples
        to their clusters' centroids ``means``, scaled units.
    totals : Assignment or None
        The last pass of step 3 over this process's samples (its shard under
        ``torchrun``): the next pass updates its sums with only the samples whose
        cluster changed.
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
    restart: int = 0
    inertia: float | None = None
    totals: Assignment | None = None

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

    def __call__(self, samples: SampleBatches, rng: np.random.RandomState) -> FirstClusters: ...


class Train(Protocol):
    """Step 2: train ``state.network``; returns at least ``{"loss": float}`` (more
    entries go into the history record)."""

    def __call__(self, state: LoopState, samples: SampleBatches) -> dict[str, Any]: ...


class Update(Protocol):
    """Step 4: the new centroids in the loop's space, their means in the samples' space,
    the inertia around those means (scaled units) and the repaired empty clusters. It
    leaves ``assignment`` as it is: the next pass starts from its sums."""

    def __call__(
        self, state: LoopState, assignment: Assignment, samples: SampleBatches, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, float, list[int]]: ...


class Checkpoints(Protocol):
    """Where the loop's state goes after each iteration (see :mod:`neural_kmeans.io.checkpoint`)."""

    def save(self, state: LoopState, done: bool) -> None: ...

    def raise_if_interrupted(self, iteration: int) -> None: ...


@dataclass(frozen=True)
class LoopParts:
    """What makes one mode of the loop: its steps 1, 2 and 4 (step 3 is shared).

    ``final_assignment``: when the loop ends with labels given before the last move of
    the centroids, train on the final centroids and label the samples once more, so
    that the labels are the final network's clusters of the final centroids
    (scikit-learn's final E-step; used by the nearest-centroid network, whose "training"
    is setting the centroids). Without it the labels stay the last iteration's and the
    centroids are their members' means.
    """

    start: Start
    train: Train
    update: Update
    final_assignment: bool = False


@dataclass(frozen=True)
class LoopSettings:
    """The loop's knobs.

    Attributes
    ----------
    max_iter : int
    tol : float
        Stop when the centroids moved by at most this much in all (the sum of their
        squared shifts, in the loop's units), or when no label changed: scikit-learn's
        test (the estimator scales its ``tol`` by the data's variance).
    batch_size : int
    learning_rate : float
        For the divergence messages.
    verbose : int
    record_centroids : bool
    """

    max_iter: int
    tol: float
    batch_size: int
    learning_rate: float
    verbose: int = 0
    record_centroids: bool = False
