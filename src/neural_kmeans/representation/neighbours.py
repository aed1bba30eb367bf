"""The k-nearest-neighbour graph of the codes: where the learned space's clusters are
read from (UMAP's input, and each sample's confidence in its cluster). Exact up to
:data:`EXACT_MAX_POINTS` points; above, approximate (NN-descent), whose time grows about
linearly with the points where the exact graph's grows with their square."""

from __future__ import annotations

import numpy as np
import torch

from neural_kmeans.core import progress

#: Up to this many points (and on a GPU) the graph is exact. NN-descent (pynndescent,
#: the search umap-learn itself uses) first compiles its numba code, about 20 s on two
#: cores, then takes a few seconds for 70,000 points, where the exact graph takes about
#: 30 s there and grows with the square of the points (docs/learned.md).
EXACT_MAX_POINTS = 50_000


def knn_graph(
    points: torch.Tensor, n_neighbors: int, seed: int = 0, verbose: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_neighbors`` nearest neighbours of every point, itself first:
    :func:`exact_knn` up to :data:`EXACT_MAX_POINTS` points or on a GPU,
    :func:`approximate_knn` above. Same returns as :func:`exact_knn`."""
    if points.shape[0] <= EXACT_MAX_POINTS or points.device.type != "cpu":
        return exact_knn(points, n_neighbors, verbose=verbose)
    if verbose:
        progress.line(
            f"k-nearest neighbours of {points.shape[0]:,} samples: approximate (NN-descent; "
            "its code compiles first, about 20 s)"
        )
    return approximate_knn(points, n_neighbors, seed=seed)


def approximate_knn(
    points: torch.Tensor, n_neighbors: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The approximate ``n_neighbors`` nearest neighbours of every point, itself first
    (NN-descent, pynndescent: 99.5 % of the exact neighbours on MNIST's gradient
    histograms). Single-threaded and seeded: the same graph on every run. Same returns
    as :func:`exact_knn`."""
    from pynndescent import NNDescent

    data = points.detach().float().cpu().numpy()
    k = min(int(n_neighbors), data.shape[0])
    index = NNDescent(data, n_neighbors=k, metric="euclidean", random_state=seed, n_jobs=1)
    indices, distances = index.neighbor_graph
    return _self_first(indices.astype(np.int64), distances.astype(np.float32))


def _self_first(indices: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point moved to the front of its own row at distance 0 (a search can rank a
    duplicate of it first, or miss it): the layout and the confidence read the first
    column as the point itself."""
    for i in np.flatnonzero(indices[:, 0] != np.arange(len(indices))):
        found = np.flatnonzero(indices[i] == i)
        end = found[0] if found.size else indices.shape[1] - 1
        indices[i, 1 : end + 1] = indices[i, :end].copy()
        distances[i, 1 : end + 1] = distances[i, :end].copy()
        indices[i, 0], distances[i, 0] = i, 0.0
    return indices, distances


def exact_knn(
    points: torch.Tensor, n_neighbors: int, chunk_size: int = 256, verbose: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``n_neighbors`` nearest neighbours of every point, itself first.

    Squared distances ``||x||² - 2 x·y + ||y||²`` come a chunk of rows at a time from
    one matrix product, so memory stays at ``chunk_size × n`` floats; the result is
    deterministic (ties: torch's top-k order).

    Parameters
    ----------
    points : torch.Tensor of shape (n, d), float
    n_neighbors : int
        Neighbours per point, the point itself first (distance 0).
    chunk_size : int, default=256
    verbose : int, default=0
        Draw a progress bar of the rows done when positive.

    Returns
    -------
    indices : ndarray of shape (n, n_neighbors), int64
    distances : ndarray of shape (n, n_neighbors), float32
        Euclidean distances, ascending along each row.
    """
    points = points.float()
    n = points.shape[0]
    k = min(int(n_neighbors), n)
    squared = (points * points).sum(dim=1)
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    shown = progress.bar(n, "k-nearest neighbours", enabled=bool(verbose), unit="sample")
    with torch.inference_mode():
        for start in range(0, n, chunk_size):
            block = points[start : start + chunk_size]
            # ||y||² - 2 x·y: the row's own ||x||² does not change its ranking.
            partial = torch.addmm(squared.unsqueeze(0), block, points.T, beta=1.0, alpha=-2.0)
            values, found = torch.topk(partial, k, dim=1, largest=False, sorted=True)
            values = (values + squared[start : start + chunk_size, None]).clamp_(min=0).sqrt_()
            indices[start : start + block.shape[0]] = found.cpu().numpy()
            distances[start : start + block.shape[0]] = values.cpu().numpy()
            shown.update(block.shape[0])
    shown.close()
    # A point's own distance is exactly 0 (rounding can leave a tiny positive value),
    # and it comes first in its row even where an exact twin of it ranked first.
    distances[:, 0] = np.where(indices[:, 0] == np.arange(n), 0.0, distances[:, 0])
    return _self_first(indices, distances)
