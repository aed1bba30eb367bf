"""scikit-learn's own estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import check_estimator

from neural_kmeans import NeuralKMeans

#: The checks that fail, and why; each is checked to fail (an unexpected pass is reported).
EXPECTED_FAILURES = {
    # As for scikit-learn's own KMeans: k-means++ draws its centroids from the samples,
    # so weighting a sample and repeating it draw differently.
    "check_sample_weight_equivalence_on_dense_data": "k-means++ draws differ (as KMeans)",
    "check_sample_weight_equivalence_on_sparse_data": "k-means++ draws differ (as KMeans)",
    # The check reads classifier tags from any estimator with predict_proba; a
    # clusterer's probabilities have one column per cluster, and it has no such tags.
    "check_estimator_sparse_array": "predict_proba taken for a classifier's",
    "check_estimator_sparse_matrix": "predict_proba taken for a classifier's",
}


def test_check_estimator_passes():
    results = check_estimator(
        NeuralKMeans(n_clusters=3, max_iter=5, random_state=0),
        on_fail=None,
        expected_failed_checks=EXPECTED_FAILURES,
    )
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert failed == []
    # the skips: array-API input, which sklearn tests only with SCIPY_ARRAY_API=1, and
    # pandas input where pandas is not installed
    assert skipped <= {"check_array_api_input", "check_sample_weights_pandas_series"}
    assert len(results) >= 40


def test_init_only_stores_parameters():
    model = NeuralKMeans(5, network="mlp", init="random", random_state=3)
    assert model.get_params()["n_clusters"] == 5
    assert not [name for name in vars(model) if name.endswith("_")]
