"""Step 3: feed every sample to the network; its predicted class is its cluster.

One pass over the data gives the labels and, at the same time, what step 4 and the
inertia need: per-cluster sums and counts and the total squared norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from neural_kmeans.batches import SampleBatches


@dataclass
class Assignment:
    """What one pass over the samples gives.

    Attributes
    ----------
    labels : torch.Tensor of shape (n,), int64, on the CPU
    sums : torch.Tensor of shape (K, d), float64 — per-cluster sums of the samples
    counts : torch.Tensor of shape (K,), int64 — per-cluster sizes
    squared_norm : float — sum over samples of ``||x||²`` (for the inertia)
    """

    labels: torch.Tensor
    sums: torch.Tensor
    counts: torch.Tensor
    squared_norm: float


def predict_batches(
    network: nn.Module, samples: SampleBatches, batch_size: int, probabilities: bool = False
) -> torch.Tensor:
    """The network's cluster (n,) int64, or probabilities (n, K), for every sample."""
    network.eval()
    outputs = []
    with torch.inference_mode():
        for _, rows in samples(batch_size):
            logits = network(samples.as_input(rows))
            outputs.append(
                torch.softmax(logits.float(), dim=1).cpu()
                if probabilities
                else logits.argmax(dim=1).cpu()
            )
    return torch.cat(outputs)


def assign_and_accumulate(
    network: nn.Module,
    samples: SampleBatches,
    n_clusters: int,
    batch_size: int,
    start: int = 0,
    stop: int | None = None,
) -> Assignment:
    """Label the samples ``start:stop`` with the network and accumulate cluster sums."""
    stop = samples.n_samples if stop is None else stop
    device = samples.device
    labels = torch.empty(stop - start, dtype=torch.int64)
    sums = torch.zeros(n_clusters, samples.n_features, dtype=torch.float64, device=device)
    counts = torch.zeros(n_clusters, dtype=torch.int64, device=device)
    squared_norm = torch.zeros((), dtype=torch.float64, device=device)
    network.eval()
    with torch.inference_mode():
        for offset, rows in samples(batch_size, start, stop):
            batch_labels = network(samples.as_input(rows)).argmax(dim=1)
            rows64 = rows.double()
            sums.index_add_(0, batch_labels, rows64)
            counts += torch.bincount(batch_labels, minlength=n_clusters)
            squared_norm += (rows64 * rows64).sum()
            labels[offset - start : offset - start + rows.shape[0]] = batch_labels.cpu()
    return Assignment(labels, sums, counts, float(squared_norm))
