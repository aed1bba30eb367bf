"""Regions of touching clusters, to be laid out again on their own.

UMAP lays every sample out in one picture, and where several clusters touch (their
samples are among each other's nearest neighbours) that picture compromises between
them: Fashion-MNIST's sandals, sneakers and ankle boots, or digits' 1s and 8s, meet in
one blob that the mixture cuts in the wrong places. The samples of such a region, laid
out again alone (their own k-NN graph, UMAP layout and mixture, with as many clusters
as the region had), are cut where their own graph parts them. This module finds the
regions: groups of clusters linked by the k-NN graph. No label is read, and no cluster
size is assumed: a region keeps its number of clusters.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

__all__ = ["linked_groups"]


def linked_groups(
    labels: torch.Tensor, neighbours: torch.Tensor, n_clusters: int, share: float
) -> list[np.ndarray]:
    """The groups of clusters that the k-NN graph links.

    Clusters a and b are linked when the share of a's neighbour edges that end in b
    and the share of b's that end in a average ``share`` or more; the groups are the
    connected components of two clusters or more of these links.

    Parameters
    ----------
    labels : torch.Tensor of shape (n,), int64
    neighbours : torch.Tensor of shape (n, k), int64
        Each sample's neighbours, itself excluded.
    n_clusters : int
    share : float
        In (0, 1].

    Returns
    -------
    list of ndarrays of int64
        Each group's clusters, ascending; groups ordered by their first cluster.
    """
    ends = labels[neighbours]  # (n, k): the cluster of each edge's end
    starts = labels[:, None].expand_as(ends)
    edges = torch.zeros(n_clusters, n_clusters, dtype=torch.float64)
    edges.index_put_((starts.reshape(-1), ends.reshape(-1)), torch.ones(1).double(), True)
    shares = edges / edges.sum(dim=1, keepdim=True).clamp_min(1.0)
    links = ((shares + shares.T) / 2 >= share).numpy()
    np.fill_diagonal(links, False)
    _, component = connected_components(csr_array(links), directed=False)
    groups = [np.flatnonzero(component == c) for c in np.unique(component)]
    return [group for group in groups if len(group) > 1]
