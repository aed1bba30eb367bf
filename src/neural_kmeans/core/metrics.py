"""Clustering quality against known classes: accuracy, purity, NMI, ARI, Rand index."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    rand_score,
)
from sklearn.metrics.cluster import contingency_matrix

METRIC_NAMES = ("acc", "nmi", "ari", "rand", "purity")


def clustering_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy under the best one-to-one map of clusters to classes (Hungarian).

    With K clusters and C classes, min(K, C) pairs are matched (rectangular
    assignment); samples of unmatched clusters count as errors.
    """
    table = contingency_matrix(np.asarray(y_true), np.asarray(y_pred))
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def purity(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of samples in their cluster's most frequent class."""
    table = contingency_matrix(np.asarray(y_true), np.asarray(y_pred))
    return float(table.max(axis=0).sum() / table.sum())


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """All metrics as ``{"acc", "nmi", "ari", "rand", "purity"}``, each in [0, 1]
    (ARI can dip below 0 for worse-than-chance clusterings).

    Parameters
    ----------
    y_true : array of shape (n,)
        Known classes.
    y_pred : array of shape (n,)
        Cluster labels.
    """
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred differ in length: {y_true.shape[0]} and {y_pred.shape[0]}"
        )
    if y_true.size == 0:
        raise ValueError("cannot evaluate an empty clustering: y_true and y_pred are empty")
    return {
        "acc": clustering_accuracy(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "rand": float(rand_score(y_true, y_pred)),
        "purity": purity(y_true, y_pred),
    }


def same_clustering(first: Any, second: Any) -> bool:
    """Whether two labelings are the same partition (the labels renamed one to one)."""
    first, second = np.asarray(first).ravel(), np.asarray(second).ravel()
    pairs = np.unique(np.stack([first, second]), axis=1)
    return pairs.shape[1] == np.unique(first).size == np.unique(second).size
