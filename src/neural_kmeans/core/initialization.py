"""Step 1: pick the K first centroids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import kmeans_plusplus

from neural_kmeans.core.loop import FirstClusters
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.validation import INIT_NAMES

# k-means++ reads this many samples at most (a uniform random subset beyond it), so
# initialising a memory-mapped data set of any size costs a bounded amount of memory.
KMEANS_PLUSPLUS_MAX_SAMPLES = 50_000


def initial_centroids(
    samples: SampleBatches,
    n_clusters: int,
    init: str | np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The first centroids, shape (K, d) float64, in the scaled space of ``samples``.

    ``init`` is ``"random"`` (K distinct samples, as the reference notebook),
    ``"k-means++"`` (scikit-learn's seeding) or an array of K centroids given in the
    input's units, shape (K, d) or (K, *image_shape).
    """
    n = samples.n_samples
    if isinstance(init, str):
        if init == "random":
            chosen = np.sort(rng.choice(n, size=n_clusters, replace=False))
            return _rows(samples, chosen)
        if init == "k-means++":
            subset = np.arange(n)
            if n > KMEANS_PLUSPLUS_MAX_SAMPLES:
                subset = np.sort(rng.choice(n, KMEANS_PLUSPLUS_MAX_SAMPLES, replace=False))
            data = _rows(samples, subset, np.float32)
            seed = int(rng.integers(np.iinfo(np.int32).max))
            centers, _ = kmeans_plusplus(data, n_clusters, random_state=seed)
            return centers.astype(np.float64)
        raise ValueError(
            f"unknown init {init!r}; use one of {', '.join(INIT_NAMES)} or an array of "
            f"{n_clusters} centroids"
        )
    given = np.asarray(init, dtype=np.float64)
    if given.shape[0] != n_clusters or given.reshape(given.shape[0], -1).shape[1] != (
        samples.n_features
    ):
        raise ValueError(
            f"init array has shape {given.shape}; expected ({n_clusters}, {samples.n_features}) "
            "(n_clusters centroids with the samples' number of features)"
        )
    if not np.isfinite(given).all():
        raise ValueError("init array holds NaN or infinite values; give finite centroids")
    return given.reshape(n_clusters, -1) * samples.scale


def _rows(samples: SampleBatches, indices: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Selected rows, scaled like the batches."""
    rows = np.asarray(samples.flat[indices], dtype=dtype)
    rows *= dtype(samples.scale)
    return rows


@dataclass(frozen=True)
class CentroidStart:
    """Step 1 of ``features="pixels"``: K centroids drawn by ``init`` (no labels yet)."""

    n_clusters: int
    init: str | np.ndarray

    def __call__(self, samples: SampleBatches, rng: np.random.Generator) -> FirstClusters:
        centroids = torch.as_tensor(
            initial_centroids(samples, self.n_clusters, self.init, rng),
            dtype=torch.float64,
            device=samples.device,
        )
        return FirstClusters(centroids=centroids, means=centroids)
