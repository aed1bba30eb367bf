"""scikit-learn's own estimator checks."""

from __future__ import annotations

from sklearn.utils.estimator_checks import check_estimator

from neural_kmeans import NeuralKMeans


def test_check_estimator_passes():
    results = check_estimator(NeuralKMeans(n_clusters=3, max_iter=5, random_state=0), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert failed == []
    # the only skip: array-API input, which sklearn tests only with SCIPY_ARRAY_API=1
    assert skipped <= {"check_array_api_input"}
    assert len(results) >= 40


def test_init_only_stores_parameters():
    model = NeuralKMeans(5, network="mlp", init="random", random_state=3)
    assert model.get_params()["n_clusters"] == 5
    assert not [name for name in vars(model) if name.endswith("_")]
