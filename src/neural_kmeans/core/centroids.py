"""Step 4: move each centroid to the (weighted) mean of its members, as scikit-learn does.

An empty cluster (no member, or members of weight 0) takes the sample farthest from
its *previous* centroid, which leaves its own cluster; nothing moves when every sample
sits on its centroid; a cluster still empty then sits on the heaviest cluster's
centroid. These are ``sklearn.cluster.KMeans``'s rules, so the nearest-centroid
network reproduces its fits exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from neural_kmeans.core.assignment import Assignment, squared_distances
from neural_kmeans.core.samples import SampleBatches

if TYPE_CHECKING:
    from neural_kmeans.core.state import LoopState


def centroid_means(
    sums: torch.Tensor, weights: torch.Tensor, previous: torch.Tensor
) -> torch.Tensor:
    """Means of the clusters, shape (K, d): ``sums[k] / weights[k]`` (scikit-learn's
    product with the reciprocal). An empty cluster keeps its ``previous`` centroid."""
    safe = torch.where(weights > 0, weights, torch.ones_like(weights)).to(sums.dtype)
    means = sums * (1.0 / safe).unsqueeze(1)
    empty = weights <= 0
    if bool(empty.any()):
        means[empty] = previous[empty].to(means.dtype)
    return means


def squared_distances_to_assigned(
    samples: SampleBatches,
    labels: torch.Tensor,
    centroids: torch.Tensor,
    batch_size: int,
    start: int = 0,
    stop: int | None = None,
) -> torch.Tensor:
    """``||x_i - c_{labels_i}||²`` for the samples ``start:stop``, float64 on the CPU
    (``labels`` holds every sample's label)."""
    stop = samples.n_samples if stop is None else stop
    out = torch.empty(stop - start, dtype=torch.float64)
    for offset, rows in samples(batch_size, start, stop):
        end = offset + rows.shape[0]
        distances = squared_distances(rows, centroids, labels[offset:end])
        out[offset - start : end - start] = distances.cpu()
    return out


def inertia(
    samples: SampleBatches,
    labels: torch.Tensor,
    centroids: torch.Tensor,
    batch_size: int,
    start: int = 0,
    stop: int | None = None,
) -> float:
    """Sum of the (weighted) squared distances of the samples ``start:stop`` to their
    centroids."""
    distances = squared_distances_to_assigned(samples, labels, centroids, batch_size, start, stop)
    if samples.weights is not None:
        distances = distances * torch.from_numpy(samples.weights[start : start + len(distances)])
    return float(distances.sum())


def inertia_from_sums(assignment: Assignment, means: torch.Tensor) -> float:
    """The inertia from one pass's sums, when ``means`` are the clusters' own means:
    ``sum w ||x||² - sum_k ||S_k||² / W_k`` (no second pass over the data)."""
    weights = torch.where(
        assignment.weights > 0, assignment.weights, torch.ones_like(assignment.weights)
    )
    between = ((assignment.sums**2).sum(dim=1) / weights.double()).sum()
    return max(float(assignment.squared_norm - between), 0.0)


def relocate_empty_clusters(
    samples: SampleBatches,
    assignment: Assignment,
    previous: torch.Tensor,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """scikit-learn's relocation, on the sums: each empty cluster takes one of the
    samples farthest from their previous centroids (``numpy.argpartition``'s order, as
    scikit-learn), which leaves its cluster's sum. Returns the new sums, weights and
    the relocated clusters."""
    sums, weights = assignment.sums.clone(), assignment.weights.clone()
    empty = torch.nonzero(weights == 0).flatten().tolist()
    if not empty:
        return sums, weights, []
    distances = squared_distances_to_assigned(samples, assignment.labels, previous, batch_size)
    distances = distances.numpy()
    if distances.max() == 0:  # more clusters than distinct samples: nothing to move
        return sums, weights, []
    farthest = np.argpartition(distances, -len(empty))[: -len(empty) - 1 : -1]
    for cluster, index in zip(empty, farthest.tolist(), strict=True):
        weight = 1.0 if samples.weights is None else float(samples.weights[index])
        row = samples.flat_batch(index, index + 1)[0].to(sums) * weight
        donor = int(assignment.labels[index])
        sums[donor] -= row
        sums[cluster] = row
        weights[cluster] = weight
        weights[donor] -= weight
    return sums, weights, empty


def average_centers(sums: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The weighted means; a cluster still empty sits on the heaviest cluster's mean."""
    means = centroid_means(sums, weights, torch.zeros_like(sums))
    empty = weights <= 0
    if bool(empty.any()):
        means[empty] = means[int(torch.argmax(weights))].clone()
    return means


@dataclass(frozen=True)
class InputSpace:
    """Step 4 of ``features="pixels"``: the centroids live in the samples' own space and
    move to their members' (weighted) means, empty clusters relocated as scikit-learn
    does."""

    def __call__(
        self, state: LoopState, assignment: Assignment, samples: SampleBatches, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, float, list[int]]:
        sums, weights, relocated = relocate_empty_clusters(
            samples, assignment, state.centroids, batch_size
        )
        centroids = average_centers(sums, weights)
        if relocated:
            value = inertia(samples, assignment.labels, centroids, batch_size)
        else:
            value = inertia_from_sums(assignment, centroids)
        return centroids, centroids, value, relocated
