"""Step 3: feed every sample to the network; its predicted class is its cluster.

One pass over the data gives the labels and, at the same time, what step 4 and the
inertia need: per-cluster sums and counts (the total squared norm of the samples is
measured once, in :meth:`SampleBatches.squared_norm`). Given the previous pass's
totals, the sums are updated with only the samples whose cluster changed (each moves
from its old cluster's sum to its new one's), so that after the first iterations the
pass costs little more than the network's forward pass. The sums are accumulated in
float64 from the rows' own values, so both ways give the same sums wherever float64
holds them exactly (e.g. 8-bit pixels scaled to [0, 1], up to millions of samples), and
sums within float64's rounding elsewhere.
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

    The next pass takes it as ``previous`` (its labels, sums, counts and weights).
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
    if len(layers) < 2 or not (
        isinstance(layers[0], nn.Flatten) and isinstance(layers[1], nn.Linear)
    ):
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
    previous: Assignment | None = None,
) -> Assignment:
    """Label the samples ``start:stop`` with the network and accumulate cluster sums.

    Per batch, the rows are added to their cluster's sum (``index_add_``) in the same
    pass as the labels; with ``previous``, the last pass over the same samples, only
    the rows whose label changed are read again after the pass, and move from their old
    cluster's sum to the new one's. With ``centroids`` (K, d), the pass also measures
    the (weighted) squared distance of each sample to its cluster's centroid: the
    inertia against those centroids, without a second pass.
    """
    stop = samples.n_samples if stop is None else stop
    labels = torch.empty(stop - start, dtype=torch.int64)
    if previous is not None and previous.labels.shape[0] != stop - start:
        raise ValueError("previous holds another number of samples than start:stop")
    totals = _Totals(samples, n_clusters, start, stop, centroids, previous)
    for offset, rows, logits in network_outputs(network, samples, batch_size, start, stop):
        batch_labels = logits.argmax(dim=1)
        totals.add(offset, rows, batch_labels)
        labels[offset - start : offset - start + rows.shape[0]] = batch_labels.cpu()
    return totals.assignment(labels, batch_size)


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
    return totals.assignment(labels, batch_size)


class _Totals:
    """The running totals of one pass of :func:`assign_and_accumulate` (or of
    :func:`accumulate_labels`)."""

    def __init__(
        self,
        samples: SampleBatches,
        n_clusters: int,
        start: int,
        stop: int,
        centroids: torch.Tensor | None = None,
        previous: Assignment | None = None,
    ) -> None:
        device, self.samples, self.n_clusters = samples.device, samples, n_clusters
        self.start, self.stop, self.previous = start, stop, previous
        if previous is None:
            shape = (n_clusters, samples.n_features)
            self.sums = torch.zeros(shape, dtype=torch.float64, device=device)
            self.weights = torch.zeros(n_clusters, dtype=torch.float64, device=device)
        else:
            self.sums = previous.sums.to(device, torch.float64, copy=True)
            self.weights = previous.weights.to(device, torch.float64, copy=True)
        self.centroids = None if centroids is None else centroids.to(device, torch.float64)
        self.distance = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, offset: int, rows: torch.Tensor, labels: torch.Tensor) -> None:
        """One batch of the pass: ``rows`` (b, d) from ``offset``, and their labels."""
        weights = self.samples.weight_batch(offset, offset + rows.shape[0], torch.float64)
        if self.previous is None:
            self._move(rows, weights, labels)
        if self.centroids is not None:
            distances = squared_distances(rows, self.centroids, labels)
            self.distance += distances.sum() if weights is None else weights @ distances

    def _move(
        self,
        rows: torch.Tensor,
        weights: torch.Tensor | None,
        labels: torch.Tensor,
        old: torch.Tensor | None = None,
    ) -> None:
        """Add the rows (times their weights) to their clusters' sums and, with ``old``,
        take them from their old clusters'."""
        rows = rows.double() if weights is None else rows.double() * weights.unsqueeze(1)
        self.sums.index_add_(0, labels, rows)
        if weights is not None:  # unweighted, the weights are the counts
            self.weights.index_add_(0, labels, weights)
        if old is not None:
            self.sums.index_add_(0, old, rows, alpha=-1)
            if weights is not None:
                self.weights.index_add_(0, old, weights, alpha=-1)

    def _move_changed(self, labels: torch.Tensor, batch_size: int) -> None:
        """Move the samples whose label differs from the previous pass's, reading their
        rows again (``batch_size`` at a time)."""
        assert self.previous is not None
        device = self.samples.device
        changed = torch.nonzero(labels != self.previous.labels).flatten()
        for part in changed.split(batch_size):
            indices = part + self.start
            rows = self.samples.rows(indices)
            weights = None
            if self.samples.weights is not None:
                weights = torch.as_tensor(self.samples.weights[indices.numpy()], device=device)
            old = self.previous.labels[part].to(device)
            self._move(rows, weights, labels[part].to(device), old)

    def assignment(self, labels: torch.Tensor, batch_size: int) -> Assignment:
        """The pass's result, once ``labels`` (on the CPU) holds every label."""
        if self.previous is not None:
            self._move_changed(labels, batch_size)
        counts = torch.bincount(labels, minlength=self.n_clusters).to(self.sums.device)
        weights = counts.double() if self.samples.weights is None else self.weights
        squared_norm = float(self.samples.squared_norm(self.start, self.stop))
        inertia = None if self.centroids is None else float(self.distance)
        return Assignment(labels, self.sums, counts, squared_norm, weights, inertia)
