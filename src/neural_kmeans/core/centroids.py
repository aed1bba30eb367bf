"""Step 4: move each centroid to the mean of its members, repairing empty clusters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from neural_kmeans.core.assignment import Assignment
from neural_kmeans.core.samples import SampleBatches

if TYPE_CHECKING:
    from neural_kmeans.core.loop import LoopState


def centroid_means(
    sums: torch.Tensor, counts: torch.Tensor, previous: torch.Tensor
) -> torch.Tensor:
    """Means of the clusters, shape (K, d): ``sums[k] / counts[k]``.

    An empty cluster keeps its previous centroid here; :func:`repair_empty_clusters`
    then moves it. No NaN is ever produced.
    """
    safe = counts.clamp(min=1).to(sums.dtype).unsqueeze(1)
    means = sums / safe
    empty = counts == 0
    if bool(empty.any()):
        means[empty] = previous[empty].to(means.dtype)
    return means


def squared_distances_to_assigned(
    samples: SampleBatches, labels: torch.Tensor, centroids: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """``||x_i - c_{labels_i}||²`` for every sample, shape (n,) float64 on the CPU."""
    out = torch.empty(samples.n_samples, dtype=torch.float64)
    for offset, rows in samples(batch_size):
        stop = offset + rows.shape[0]
        assigned = centroids[labels[offset:stop].to(centroids.device)].to(rows.dtype)
        out[offset:stop] = ((rows - assigned) ** 2).sum(dim=1).double().cpu()
    return out


def repair_empty_clusters(
    samples: SampleBatches,
    labels: torch.Tensor,
    sums: torch.Tensor,
    counts: torch.Tensor,
    centroids: torch.Tensor,
    batch_size: int,
) -> list[int]:
    """Move each empty cluster's centroid onto a sample far from its own centroid.

    As scikit-learn does: the samples farthest from their assigned centroids become
    the empty clusters' centroids, and each donor cluster's centroid is recomputed
    without that sample. ``sums``, ``counts`` and ``centroids`` (K, d) are updated in
    place; labels are left as the network gave them. Returns the repaired clusters.
    """
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if not empty:
        return []
    distances = squared_distances_to_assigned(samples, labels, centroids, batch_size)
    farthest = torch.argsort(distances, descending=True)[: len(empty)].tolist()
    for cluster, index in zip(empty, farthest, strict=False):
        row = samples.flat_batch(index, index + 1)[0].to(sums)
        donor = int(labels[index])
        centroids[cluster] = row.to(centroids.dtype)
        sums[cluster] = row
        counts[cluster] = 1
        if counts[donor] > 1:
            sums[donor] -= row
            counts[donor] -= 1
            centroids[donor] = (sums[donor] / counts[donor]).to(centroids.dtype)
    return empty


def inertia_from_sums(assignment: Assignment, means: torch.Tensor) -> float:
    """Sum of ``||x - mean_label||²`` from one pass's sums, when ``means`` are the
    clusters' own means: ``sum ||x||² - sum_k ||S_k||² / n_k``."""
    counts = assignment.counts.clamp(min=1).double()
    between = ((assignment.sums**2).sum(dim=1) / counts).sum()
    return max(float(assignment.squared_norm - between), 0.0)


@dataclass(frozen=True)
class InputSpace:
    """Step 4 of ``features="pixels"``: the centroids live in the samples' own space and
    move to their members' means; an empty cluster takes a far sample (scikit-learn's
    repair)."""

    def __call__(
        self, state: LoopState, assignment: Assignment, samples: SampleBatches, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, float, list[int]]:
        sums, counts = assignment.sums, assignment.counts
        centroids = centroid_means(sums, counts, state.centroids)
        repaired = repair_empty_clusters(
            samples, assignment.labels, sums, counts, centroids, batch_size
        )
        if repaired:
            distances = squared_distances_to_assigned(
                samples, assignment.labels, centroids, batch_size
            )
            inertia = float(distances.sum())
        else:
            inertia = inertia_from_sums(assignment, centroids)
        return centroids, centroids, inertia, repaired
