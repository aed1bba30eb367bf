"""Step 1: pick the K first centroids.

The draws are scikit-learn's, from the same ``numpy.random.RandomState``: given the same
``random_state`` (and weights), ``"k-means++"`` and ``"random"`` pick the centroids that
``sklearn.cluster.KMeans`` picks, so the nearest-centroid network reproduces its fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import kmeans_plusplus
from sklearn.utils.extmath import row_norms

from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.state import FirstClusters
from neural_kmeans.core.validation import INIT_NAMES, check_centers_shape

#: A memory-mapped data set (data larger than memory) is seeded by k-means++ on a uniform
#: random subset of this many samples, so that initialising it costs bounded memory.
KMEANS_PLUSPLUS_MAX_SAMPLES = 50_000

#: ``init(X, n_clusters, random_state) -> centroids``: ``X`` the samples as given (input
#: units, flattened to rows), ``random_state`` a ``numpy.random.RandomState``.
InitCallable = Callable[..., np.ndarray]


def initial_centroids(
    samples: SampleBatches,
    n_clusters: int,
    init: str | np.ndarray | InitCallable,
    rng: np.random.RandomState,
) -> np.ndarray:
    """The first centroids, shape (K, d) float64, in the scaled space of ``samples``.

    ``init`` is ``"random"`` (K distinct samples drawn with probabilities proportional
    to their weights, as the reference notebook and scikit-learn), ``"k-means++"``
    (scikit-learn's seeding, on the samples centred as scikit-learn centres them), a
    callable ``init(X, n_clusters, random_state)`` or an array of K centroids, both in
    the input's units, shape (K, d) or (K, *image_shape).
    """
    n = samples.n_samples
    weights = np.ones(n) if samples.weights is None else samples.weights
    if isinstance(init, str) and init == "random":
        chosen = rng.choice(n, size=n_clusters, replace=False, p=weights / weights.sum())
        return _dense(samples.array_rows(chosen, np.float64))
    if isinstance(init, str) and init == "k-means++":
        return _kmeans_plusplus(samples, n_clusters, weights, rng)
    if isinstance(init, str):
        raise ValueError(f"unknown init {init!r}; use one of {', '.join(INIT_NAMES)}")
    given = init(samples.flat, n_clusters, random_state=rng) if callable(init) else init
    given = np.asarray(_dense(given), dtype=np.float64)
    check_centers_shape(given, n_clusters, samples.n_features)
    if not np.isfinite(given).all():
        raise ValueError("init gave NaN or infinite centroids; give finite centroids")
    return given.reshape(n_clusters, -1) * samples.scale


def _kmeans_plusplus(
    samples: SampleBatches, n_clusters: int, weights: np.ndarray, rng: np.random.RandomState
) -> np.ndarray:
    """scikit-learn's k-means++ on the rows in the dtype ``KMeans`` would see them
    (float64 stays float64, the rest float32), centred as ``KMeans`` centres them."""
    n = samples.n_samples
    subset: slice | np.ndarray = slice(None)
    if samples.memory_mapped and n > KMEANS_PLUSPLUS_MAX_SAMPLES:
        subset = np.sort(rng.choice(n, KMEANS_PLUSPLUS_MAX_SAMPLES, replace=False))
    dtype = np.float64 if samples.flat.dtype == np.float64 else np.float32
    rows = samples.array_rows(subset, dtype)
    if not samples.sparse:
        rows -= rows.mean(axis=0)
    _, chosen = kmeans_plusplus(
        rows,
        n_clusters,
        sample_weight=weights[subset].astype(dtype),
        x_squared_norms=row_norms(rows, squared=True),
        random_state=rng,
    )
    if not isinstance(subset, slice):
        chosen = subset[chosen]
    # the chosen samples themselves (as scikit-learn's centres, before its centring)
    return _dense(samples.array_rows(chosen, dtype)).astype(np.float64)


def _dense(values: object) -> object:
    """A sparse matrix as a dense array; anything else as it is."""
    return values.toarray() if hasattr(values, "toarray") else values


@dataclass(frozen=True)
class CentroidStart:
    """Step 1 of ``features="pixels"``: K centroids drawn by ``init`` (no labels yet)."""

    n_clusters: int
    init: str | np.ndarray | InitCallable

    def __call__(self, samples: SampleBatches, rng: np.random.RandomState) -> FirstClusters:
        centroids = torch.as_tensor(
            initial_centroids(samples, self.n_clusters, self.init, rng),
            dtype=torch.float64,
            device=samples.device,
        )
        return FirstClusters(centroids=centroids, means=centroids)
