"""The 2-D illustration's data: every iteration's clusters, decision regions and
centroids of a fit on 2-D samples (drawn by :mod:`neural_kmeans.app.animation`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neural_kmeans.app.errors import UsageError
from neural_kmeans.app.experiments import Callback, NeuralConfig, _estimator

# --------------------------------------------------------------------------- 2-D traces


@dataclass
class Trajectory:
    """Per-iteration states of one fit on 2-D samples, for the animation.

    Frame 0 is the start (initial centroids, no assignment yet); frame i >= 1 is
    iteration i: the network's clusters of the samples (``labels``, (n,)), its decision
    regions on the grid (``regions``, (ny, nx), on the columns ``grid_x`` and rows
    ``grid_y``), the centroids moved to the means of their clusters (``centroids``,
    (K, 2)) and the estimator's history record (``records``). Frame 0's labels, regions
    and record are None.
    """

    title: str
    centroids: list[np.ndarray]
    labels: list[np.ndarray | None]
    regions: list[np.ndarray | None]
    records: list[dict | None]
    grid_x: np.ndarray
    grid_y: np.ndarray
    converged: bool = False

    @property
    def n_iter(self) -> int:
        """Iterations traced (frames - 1)."""
        return len(self.centroids) - 1


def _grid(x: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    low, high = x.min(axis=0), x.max(axis=0)
    pad = 0.08 * np.maximum(high - low, 1e-9)
    gx = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    gy = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    return gx, gy


def _network_labels(network: Any, points: np.ndarray) -> np.ndarray:
    """The clusters ``network`` gives float rows (the library's one inference routine)."""
    import torch

    from neural_kmeans.core.assignment import predict_batches
    from neural_kmeans.core.samples import SampleBatches

    reference = next(itertools.chain(network.parameters(), network.buffers()), None)
    dtype = reference.dtype if reference is not None else torch.float32
    device = reference.device if reference is not None else torch.device("cpu")
    was_training = network.training
    try:
        batches = SampleBatches(points, (points.shape[1],), dtype, device)
        return predict_batches(network, batches, 65536).numpy()
    finally:
        network.train(was_training)


def trace_2d(
    x: np.ndarray,
    n_clusters: int,
    seed: int,
    config: NeuralConfig,
    *,
    resolution: int = 150,
    init: np.ndarray | None = None,
    title: str | None = None,
    callbacks: Sequence[Callback] = (),
) -> tuple[Trajectory, Any]:
    """Fit ``NeuralKMeans`` on the (n, 2) samples ``x`` and record every iteration's
    state: the :class:`Trajectory` and the fitted model.

    A callback evaluates the network being trained (``state.network``) on the samples
    and on a ``resolution`` x ``resolution`` grid after each iteration, beside the
    further ``callbacks`` (progress). ``init``: (K, 2) initial centroids in place of
    ``config.init``, e.g. to start K-means from the same place.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != 2:
        raise UsageError(f"the animation needs 2-D samples; got shape {x.shape}")
    gx, gy = _grid(x, resolution)
    mesh = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2).astype(np.float32)
    labels: list[np.ndarray | None] = [None]
    regions: list[np.ndarray | None] = [None]
    records: list[dict | None] = [None]

    def trace(state: Any) -> bool:
        labels.append(_network_labels(state.network, x))
        regions.append(_network_labels(state.network, mesh).reshape(gy.size, gx.size))
        records.append({k: v for k, v in state.record.items() if k != "centroids"})
        return False

    model = _estimator(
        n_clusters, seed, config, init=init, record_centroids=True, callbacks=[trace, *callbacks]
    )
    model.set_params(n_init=1)  # one run, drawn frame by frame
    model.fit(x)
    model.callbacks = None
    centroids = [np.asarray(model.initial_centers_)]
    centroids += [np.asarray(record["centroids"]) for record in model.history_]
    trajectory = Trajectory(
        title=title or f"neural-kmeans ({config.network})",
        centroids=centroids,
        labels=labels,
        regions=regions,
        records=records,
        grid_x=gx,
        grid_y=gy,
        converged=bool(model.converged_),
    )
    return trajectory, model
