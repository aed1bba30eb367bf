"""The exact k-nearest-neighbour graph of the codes: where the learned space's clusters
are read from (UMAP's input, and each sample's confidence in its cluster)."""

from __future__ import annotations

import numpy as np
import torch

from neural_kmeans.core import progress


def exact_knn(
    points: torch.Tensor, n_neighbors: int, chunk_size: int = 256, verbose: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``n_neighbors`` nearest neighbours of every point, itself included.

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
    # A point's own distance is exactly 0 (rounding can leave a tiny positive value).
    distances[:, 0] = np.where(indices[:, 0] == np.arange(n), 0.0, distances[:, 0])
    return indices, distances
