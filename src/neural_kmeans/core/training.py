"""Step 2: train the classifier on the K labelled centroids (centroid k has class k)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from neural_kmeans.core.networks import NearestCentroidNetwork
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.validation import OPTIMIZER_NAMES

if TYPE_CHECKING:
    from neural_kmeans.core.state import LoopState


def make_optimizer(network: nn.Module, name: str, learning_rate: float) -> torch.optim.Optimizer:
    """Adam (the reference) or plain SGD over the network's trainable parameters."""
    params = [p for p in network.parameters() if p.requires_grad]
    if not params:
        return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=learning_rate)
    if name == "adam":
        return torch.optim.Adam(params, lr=learning_rate)
    if name == "sgd":
        return torch.optim.SGD(params, lr=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZER_NAMES)}")


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
    """
    targets = torch.arange(centroids.shape[0], device=centroids.device)
    if isinstance(network, NearestCentroidNetwork):
        network.set_centroids(centroids)
        network.eval()
        with torch.no_grad():
            return float(nn.functional.cross_entropy(network(centroids), targets))
    network.train()
    loss = torch.zeros(())
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
