"""Step 3: feed every sample to the network; its predicted class is its cluster.

One pass over the data gives the labels and, at the same time, what step 4 and the
inertia need: per-cluster sums and counts (the total squared norm of the samples is
measured once, in :meth:`SampleBatches.squared_norm`).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from neural_kmeans.core.networks import Standardize
from neural_kmeans.core.samples import SampleBatches


@dataclass
class Assignment:
    """What one pass over the samples gives.

    Attributes
    ----------
    labels : torch.Tensor of shape (n,), int64, on the CPU
    sums : torch.Tensor of shape (K, d), float64 — per-cluster (weighted) sums of the samples
    counts : torch.Tensor of shape (K,), int64 — per-cluster sizes
    squared_norm : float — (weighted) sum over samples of ``||x||²`` (for the inertia)
    weights : torch.Tensor of shape (K,), float64 — per-cluster sums of the sample
        weights (the sizes, as floats, when the samples are not weighted)
    inertia : float or None — the (weighted) sum of squared distances of the samples to
        the centroids of their clusters, when the pass was given centroids
    """

    labels: torch.Tensor
    sums: torch.Tensor
    counts: torch.Tensor
    squared_norm: float
    weights: torch.Tensor
    inertia: float | None = None


def fold_standardization(network: nn.Module) -> nn.Module | None:
    """``Standardize`` then ``Linear`` as one linear layer, or None when not that shape.

    ``W (x - m) / s + b = (W / s) x + (b - (W / s) m)``: one pass over the batch
    instead of three, for the standardized MLP and linear networks.
    """
    if not (isinstance(network, nn.Sequential) and len(network) == 2):
        return None
    standardize, body = network
    if not isinstance(standardize, Standardize) or not isinstance(body, nn.Sequential):
        return None
    layers = list(body)
    if len(layers) < 2 or not isinstance(layers[0], nn.Flatten):
        return None
    if not isinstance(layers[1], nn.Linear):
        return None
    first = copy.deepcopy(layers[1])
    with torch.no_grad():
        first.weight.div_(standardize.scale)
        first.bias.sub_(first.weight @ standardize.mean)
    return nn.Sequential(layers[0], first, *layers[2:]).eval()


def inference_network(network: nn.Module, device: torch.device) -> nn.Module:
    """The network frozen for fast inference: the same outputs, several times faster.

    On the CPU, a network with convolutions is scripted and frozen with
    ``torch.jit.optimize_for_inference``, which runs them in oneDNN's blocked layout
    with fused activations (about 3x faster than eager channels-last for the
    reference CNN). Networks that cannot be scripted, and other devices, run eagerly.
    Both fitting and ``predict`` go through this, so they give the same labels.
    """
    network.eval()
    folded = fold_standardization(network)
    if folded is not None:
        return folded
    if device.type != "cpu" or not any(isinstance(m, nn.Conv2d) for m in network.modules()):
        return network
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            scripted = torch.jit.script(copy.deepcopy(network))
            return torch.jit.optimize_for_inference(scripted)
    except Exception:  # any network that torch.jit cannot take runs eagerly
        return network


def network_outputs(
    network: nn.Module,
    samples: SampleBatches,
    batch_size: int,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """The library's one inference routine: ``(offset, rows, logits)`` for every batch of
    the samples ``start:stop``, through the network frozen by :func:`inference_network`,
    without gradients. Fitting, ``predict``, ``transform`` and the figures all use it, so
    they give the same clusters."""
    frozen = inference_network(network, samples.device)
    with torch.inference_mode():
        for offset, rows in samples(batch_size, start, stop):
            yield offset, rows, frozen(samples.as_input(rows))


def predict_batches(
    network: nn.Module, samples: SampleBatches, batch_size: int, probabilities: bool = False
) -> torch.Tensor:
    """The network's cluster (n,) int64, or probabilities (n, K), for every sample."""
    outputs = [
        torch.softmax(logits.float(), dim=1).cpu() if probabilities else logits.argmax(dim=1).cpu()
        for _, _, logits in network_outputs(network, samples, batch_size)
    ]
    return torch.cat(outputs)


def assign_and_accumulate(
    network: nn.Module,
    samples: SampleBatches,
    n_clusters: int,
    batch_size: int,
    start: int = 0,
    stop: int | None = None,
    centroids: torch.Tensor | None = None,
) -> Assignment:
    """Label the samples ``start:stop`` with the network and accumulate cluster sums.

    Per batch, the rows are added to their cluster's sum (``index_add_``) in the same
    pass as the labels. With ``centroids`` (K, d), the pass also measures the
    (weighted) squared distance of each sample to its cluster's centroid: the inertia
    against those centroids, without a second pass.
    """
    stop = samples.n_samples if stop is None else stop
    labels = torch.empty(stop - start, dtype=torch.int64)
    totals = _Totals(samples, n_clusters, start, stop, centroids)
    for offset, rows, logits in network_outputs(network, samples, batch_size, start, stop):
        batch_labels = logits.argmax(dim=1)
        totals.add(offset, rows, batch_labels)
        labels[offset - start : offset - start + rows.shape[0]] = batch_labels.cpu()
    return totals.assignment(labels)


def squared_distances(
    rows: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """``||x_i - c_{labels_i}||²`` of a batch of rows (b, d), in float64 on their device:
    the one formula of the inertia, in the assignment's pass and in a pass of its own."""
    assigned = centroids[labels.to(centroids.device)].to(rows.device)
    return ((rows.double() - assigned.double()) ** 2).sum(dim=1)


def accumulate_labels(
    samples: SampleBatches, labels: torch.Tensor, n_clusters: int, batch_size: int
) -> Assignment:
    """Per-cluster sums, counts and the squared norm of the samples for given ``labels``
    (n,) int64: what :func:`assign_and_accumulate` gives, without a network."""
    totals = _Totals(samples, n_clusters, 0, samples.n_samples)
    for offset, rows in samples(batch_size):
        totals.add(offset, rows, labels[offset : offset + rows.shape[0]].to(samples.device))
    return totals.assignment(labels)


class _Totals:
    """Running per-cluster sums of one pass (each batch's rows, times their weights,
    added to their cluster's row), summed over the batches in float64; and, with
    ``centroids``, the (weighted) squared distances of the rows to their centroids."""

    def __init__(
        self,
        samples: SampleBatches,
        n_clusters: int,
        start: int,
        stop: int,
        centroids: torch.Tensor | None = None,
    ) -> None:
        device, self.samples, self.n_clusters = samples.device, samples, n_clusters
        self.start, self.stop = start, stop
        self.sums = torch.zeros(n_clusters, samples.n_features, dtype=torch.float64, device=device)
        self.counts = torch.zeros(n_clusters, dtype=torch.int64, device=device)
        self.weights = torch.zeros(n_clusters, dtype=torch.float64, device=device)
        self.centroids = None if centroids is None else centroids.to(device, torch.float64)
        self.distance = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, offset: int, rows: torch.Tensor, labels: torch.Tensor) -> None:
        self.counts += torch.bincount(labels, minlength=self.n_clusters)
        weights = self.samples.weight_batch(offset, offset + rows.shape[0], rows.dtype)
        batch_sums = torch.zeros(
            self.n_clusters, rows.shape[1], dtype=rows.dtype, device=rows.device
        )
        if weights is None:
            batch_sums.index_add_(0, labels, rows)
        else:
            batch_sums.index_add_(0, labels, rows * weights.unsqueeze(1))
            self.weights.index_add_(0, labels, weights.double())
        self.sums += batch_sums.double()
        if self.centroids is not None:
            distances = squared_distances(rows, self.centroids, labels)
            self.distance += distances.sum() if weights is None else weights.double() @ distances

    def assignment(self, labels: torch.Tensor) -> Assignment:
        weights = self.counts.double() if self.samples.weights is None else self.weights
        squared_norm = float(self.samples.squared_norm(self.start, self.stop))
        inertia = None if self.centroids is None else float(self.distance)
        return Assignment(labels, self.sums, self.counts, squared_norm, weights, inertia)
