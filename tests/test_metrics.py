"""Metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from neural_kmeans.core.metrics import clustering_accuracy, evaluate, purity

# 7 samples, 3 classes, 3 clusters. Contingency (rows classes, columns clusters):
#   class 0: [2, 0, 0]; class 1: [0, 2, 1]; class 2: [0, 1, 1]
Y_TRUE = np.array([0, 0, 1, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 2, 1, 2])


def test_accuracy_by_hand():
    # best map 0→0, 1→1, 2→2 gives 2 + 2 + 1 = 5 of 7
    assert clustering_accuracy(Y_TRUE, Y_PRED) == pytest.approx(5 / 7)
    # label permutations do not matter
    assert clustering_accuracy(Y_TRUE, (Y_PRED + 1) % 3) == pytest.approx(5 / 7)


def test_purity_by_hand():
    # cluster maxima: 2 (class 0), 2 (class 1), 1 (class 1 or 2) → 5 of 7
    assert purity(Y_TRUE, Y_PRED) == pytest.approx(5 / 7)
    # one cluster per sample is perfectly pure
    assert purity(Y_TRUE, np.arange(7)) == 1.0


def test_rand_index_by_hand():
    # Classes {0,1} {2,3,4} {5,6}; clusters {0,1} {2,3,5} {4,6}; 21 pairs.
    # same class, same cluster: (0,1) (2,3)                   → 2
    # same class, other cluster: (2,4) (3,4) (5,6)            → 3
    # other class, same cluster: (2,5) (3,5) (4,6)            → 3
    # other class, other cluster: 21 - 2 - 3 - 3              → 13
    assert evaluate(Y_TRUE, Y_PRED)["rand"] == pytest.approx((2 + 13) / 21)


def test_rectangular_accuracy_more_clusters_than_classes():
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 2, 2, 3])
    # only two clusters can be matched: 0→0 (2) and 2→1 (2): 4 of 6
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    assert purity(y_true, y_pred) == 1.0


def test_rectangular_accuracy_fewer_clusters_than_classes():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1])
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(4 / 6)


def test_evaluate_keys_and_perfect_clustering():
    result = evaluate(Y_TRUE, Y_TRUE[::-1].copy()[::-1])
    assert list(result) == ["acc", "nmi", "ari", "rand", "purity"]
    assert all(value == pytest.approx(1.0) for value in result.values())


def test_evaluate_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        evaluate([0, 1], [0])
