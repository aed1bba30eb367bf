"""UMAP's layout of the neighbour graph: the learned space where the clusters are compact
blobs that a Gaussian mixture separates (umap-learn, given the exact graph)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import torch

UMAP_MISSING = (
    'features="learned" needs umap-learn: pip install "neural-kmeans[learned]" '
    "(or pip install umap-learn)"
)


def check_umap() -> None:
    """Raise ``ImportError`` with the install command when umap-learn is missing (call it
    before any work, so a long fit does not fail at its third stage)."""
    import importlib.util

    if importlib.util.find_spec("umap") is None:
        raise ImportError(UMAP_MISSING)


def umap_embedding(
    points: np.ndarray,
    knn_indices: np.ndarray,
    knn_distances: np.ndarray,
    *,
    n_components: int = 10,
    n_epochs: int | None = None,
    min_dist: float = 0.0,
    seed: int = 0,
    verbose: int = 0,
) -> np.ndarray:
    """UMAP's layout of the given k-nearest-neighbour graph (umap-learn).

    Seeded, so umap-learn runs its layout single-threaded and the result is
    reproducible; the neighbour search, its costly multi-threaded part, is replaced
    by the exact graph given here.

    Parameters
    ----------
    points : ndarray of shape (n, d)
        The points the graph was built on (umap-learn keeps them; the spectral
        initialisation reads only the graph).
    knn_indices, knn_distances : ndarray of shape (n, k)
        From :func:`.neighbours.knn_graph`, each point first in its own row.
    n_components : int, default=10
    n_epochs : int, optional
        Layout epochs; umap-learn's default (200 above 10,000 points, else 500).
    min_dist : float, default=0.0
        0 packs clusters tightly (what clustering wants).
    seed : int, default=0
    verbose : int, default=0
        A progress bar of the layout's epochs when positive; umap-learn's own lines too
        when above 1.

    Returns
    -------
    ndarray of shape (n, n_components), float32
    """
    try:
        with warnings.catch_warnings():
            # "Tensorflow not installed; ParametricUMAP will be unavailable": a part of
            # umap-learn this library does not use
            warnings.filterwarnings("ignore", message=".*ParametricUMAP", category=ImportWarning)
            import umap
    except ImportError as error:  # pragma: no cover - the message is the point
        raise ImportError(UMAP_MISSING) from error

    n = knn_indices.shape[0]
    if n <= knn_indices.shape[1]:
        raise ValueError(f"UMAP needs more samples ({n}) than neighbours ({knn_indices.shape[1]})")
    reducer = umap.UMAP(
        n_neighbors=knn_indices.shape[1],
        n_components=n_components,
        min_dist=min_dist,
        n_epochs=n_epochs,
        random_state=seed,
        precomputed_knn=(knn_indices, knn_distances, None),
        verbose=verbose > 1,
        # the layout's epochs as a bar on standard error, like the library's other bars
        tqdm_kwds={
            "disable": not verbose,
            "desc": "UMAP layout",
            "file": sys.stderr,
            "leave": False,
            "unit": "epoch",
            "bar_format": None,
        },
    )
    # umap-learn ends its fit by setting numba's threads to numba's default (all cores);
    # numba's OpenMP layer shares the OpenMP runtime of torch, whose thread count would
    # then change under the caller (and with it the rounding of the next fit's sums).
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            # "n_jobs overridden to 1 by setting random_state": the reproducible choice.
            warnings.simplefilter("ignore", UserWarning)
            embedding = reducer.fit_transform(np.asarray(points, dtype=np.float32))
    finally:
        torch.set_num_threads(threads)
    return np.asarray(embedding, dtype=np.float32)
