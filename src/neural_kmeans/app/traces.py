"""The 2-D illustration's data: every iteration's clusters, decision regions and
centroids of a fit on 2-D samples (drawn by :mod:`neural_kmeans.app.animation`)."""

from __future__ import annotations

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
    iteration i: the network's clusters of the samples, its decision regions on the
    grid, and the centroids moved to the means of their clusters.

    Attributes
    ----------
    title : str
    centroids : list of ndarray (K, 2)
    labels : list of ndarray (n,) or None
    regions : list of ndarray (ny, nx) or None
    records : list of dict or None
        The estimator's history record of each iteration (None for frame 0).
    grid_x, grid_y : ndarray
        Coordinates of the region grid's columns and rows.
    converged : bool
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

    reference = next(iter(network.parameters()), None)
    if reference is None:
        reference = next(iter(network.buffers()), None)
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
    """Fit ``NeuralKMeans`` on 2-D samples and record every iteration's state.

    A callback evaluates the network being trained (``state.network``) on
    the samples and on a ``resolution`` x ``resolution`` grid after each iteration.

    Parameters
    ----------
    x : ndarray of shape (n, 2)
    n_clusters, seed : int
    config : NeuralConfig
    resolution : int
        Grid points per axis for the decision regions.
    init : ndarray of shape (K, 2), optional
        Initial centroids (overrides ``config.init``), e.g. to start K-means from the
        same place.
    title : str, optional
    callbacks : sequence of callables
        More callbacks (progress).

    Returns
    -------
    trajectory : Trajectory
    model : NeuralKMeans
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
