"""Step 2: train the classifier on the K labelled centroids (centroid k has class k)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from neural_kmeans.core.networks import NearestCentroidNetwork
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.validation import OPTIMIZER_NAMES

if TYPE_CHECKING:
    from neural_kmeans.core.state import LoopState


#: Step 2 runs on one thread when the K centroids hold at most this many values: each
#: operation's work is then smaller than waking another thread (10 Adam steps of the
#: linear network on 10 MNIST centroids: 1.3 ms on one thread, 5.3 ms on two whose idle
#: threads sleep), and the trained weights do not depend on the number of threads.
ONE_THREAD_VALUES = 1 << 16


@contextlib.contextmanager
def deterministic_kernels(device: torch.device) -> Iterator[None]:
    """cuDNN's deterministic convolutions within the block on a CUDA ``device`` (as before
    after it). Its default picks, per call, algorithms whose backward passes add with
    atomics in any order: the same seed then gave other weights, and a fit resumed from
    a checkpoint other labels (1 of 400 on an H200). The CPU's kernels are deterministic."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = before


@contextlib.contextmanager
def one_thread(enabled: bool = True) -> Iterator[None]:
    """PyTorch on one thread within the block (when ``enabled``), as many as before after
    it. (A thread that starts its first parallel work within the block keeps one
    thread: torch gives new threads the process's count at that moment.)"""
    before = torch.get_num_threads()
    if not enabled or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_optimizer(network: nn.Module, name: str, learning_rate: float) -> torch.optim.Optimizer:
    """Adam (the reference) or plain SGD over the network's trainable parameters."""
    params = [p for p in network.parameters() if p.requires_grad]
    if not params:
        return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=learning_rate)
    optimizers = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    if name not in optimizers:
        raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZER_NAMES)}")
    return optimizers[name](params, lr=learning_rate)


def train_on_centroids(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    centroids: torch.Tensor,
    steps: int,
) -> float:
    """Take ``steps`` gradient steps of cross-entropy on (centroid k, class k).

    Parameters
    ----------
    centroids : torch.Tensor of shape (K, *input_shape)
        In the network's input layout, on its device.

    Returns
    -------
    float
        The mean cross-entropy over the K centroids at the last step (before its
        update). The nearest-centroid network is set from the centroids instead.
        Runs on one thread when the centroids are small (:data:`ONE_THREAD_VALUES`).
    """
    targets = torch.arange(centroids.shape[0], device=centroids.device)
    if isinstance(network, NearestCentroidNetwork):
        network.set_centroids(centroids)
        network.eval()
        with torch.no_grad():
            return float(nn.functional.cross_entropy(network(centroids), targets))
    network.train()
    loss = torch.zeros(())
    small = centroids.device.type == "cpu" and centroids.numel() <= ONE_THREAD_VALUES
    with one_thread(small):
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(network(centroids), targets)
            loss.backward()
            optimizer.step()
    return float(loss.detach())


@dataclass(frozen=True)
class CentroidTeacher:
    """Step 2 of ``features="pixels"``: ``steps`` gradient steps on the K centroids
    (centroid k is class k), with the state's optimizer."""

    steps: int
    dtype: torch.dtype

    def __call__(self, state: LoopState, samples: SampleBatches) -> dict[str, Any]:
        centroids = samples.as_input(state.centroids.to(self.dtype))
        return {"loss": train_on_centroids(state.network, state.optimizer, centroids, self.steps)}
