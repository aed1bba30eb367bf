"""scikit-learn's K-means contract: the final assignment, sample weights, restarts, the
callable init, sparse rows, distances and probabilities, dtypes and warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import euclidean_distances

from neural_kmeans import NeuralKMeans

FLOAT64_EPS = float(np.finfo(np.float64).eps)
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def lloyd(n_clusters: int, **options) -> NeuralKMeans:
    return NeuralKMeans(n_clusters, network="nearest-centroid", **options)


def assert_same_as_kmeans(ours: NeuralKMeans, theirs: KMeans, X: np.ndarray) -> None:
    """Equal labels and iteration counts; centres and inertia to float64 precision (n
    terms summed in another order). Continuous data: no sample lies on a tie."""
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert ours.n_iter_ == theirs.n_iter_
    scale = np.abs(X).max()
    tolerance = len(X) * FLOAT64_EPS
    np.testing.assert_allclose(
        ours.cluster_centers_, theirs.cluster_centers_, atol=tolerance * scale
    )
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=tolerance * scale**2)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(400, n_features=6, centers=8, cluster_std=2.0, random_state=1)[0]


# ---------------------------------------------------------------- the final assignment
def test_regression_labels_agree_with_the_centres_when_max_iter_stops_the_fit():
    """Issue 12's reproducer: labels, inertia and predict came from the previous step's
    centroids when the fit stopped at max_iter."""
    X, _ = make_blobs(200, n_features=10, centers=10, random_state=3)
    model = lloyd(10, init="random", max_iter=2, random_state=0).fit(X)
    np.testing.assert_array_equal(model.predict(model.cluster_centers_), np.arange(10))
    theirs = KMeans(10, init=model.initial_centers_, n_init=1, max_iter=2).fit(X)
    assert_same_as_kmeans(model, theirs, X)
    assert -model.score(X) == pytest.approx(model.inertia_, rel=len(X) * FLOAT64_EPS)


def test_regression_an_empty_cluster_takes_the_sample_farthest_from_its_old_centre():
    """Issue 12's reproducer: the sample was taken farthest from the new means."""
    X = np.array([[4], [5], [6], [17], [22], [23]], dtype=float)
    init = np.array([[0], [20], [1000]], dtype=float)
    model = lloyd(3, init=init, max_iter=1).fit(X)
    np.testing.assert_allclose(model.cluster_centers_.ravel(), [4.5, 20 + 2 / 3, 6.0])
    theirs = KMeans(3, init=init, n_init=1, max_iter=1).fit(X)
    assert_same_as_kmeans(model, theirs, X)


@pytest.mark.parametrize("init", ["k-means++", "random"])
@pytest.mark.parametrize("max_iter", [1, 2, 5, 300])
@pytest.mark.parametrize("seed", [0, 1])
def test_nearest_centroid_reproduces_kmeans_converged_or_not(blobs, init, max_iter, seed):
    ours = lloyd(8, init=init, max_iter=max_iter, random_state=seed).fit(blobs)
    theirs = KMeans(8, init=init, max_iter=max_iter, random_state=seed).fit(blobs)
    assert_same_as_kmeans(ours, theirs, blobs)
    assert len(ours.restart_inertias_) == (10 if init == "random" else 1)


def test_trained_networks_keep_predict_equal_to_labels_and_centres_equal_to_means(blobs):
    model = NeuralKMeans(8, network="mlp", max_iter=3, random_state=0).fit(blobs)
    np.testing.assert_array_equal(model.predict(blobs), model.labels_)
    for k in np.unique(model.labels_):
        members = blobs[model.labels_ == k]
        tolerance = len(blobs) * FLOAT32_EPS * np.abs(blobs).max()
        np.testing.assert_allclose(model.cluster_centers_[k], members.mean(0), atol=tolerance)


# ----------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("network", ["nearest-centroid", "linear", "mlp", "cnn"])
def test_integer_weights_equal_repeated_samples(network):
    images = load_digits().images[:300].astype(np.float64) / 16
    weights = np.random.default_rng(0).integers(1, 4, size=len(images))
    repeated = np.repeat(images, weights, axis=0)
    init = images[[0, 50, 100, 150, 200, 250]]  # the same first centroids for both
    # One iteration for the trained networks: their training amplifies any last-bit
    # difference between two float sums over the iterations (as any network training
    # does), while one iteration isolates what the weights change: steps 3 and 4.
    max_iter = 4 if network == "nearest-centroid" else 1
    options = {"network": network, "init": init, "max_iter": max_iter, "random_state": 0}
    weighted = NeuralKMeans(6, **options).fit(images, sample_weight=weights)
    copies = NeuralKMeans(6, **options).fit(repeated)
    # The same clusters, and the same centroids up to the order of float sums (float32
    # for trained networks, whose last-bit differences may move a sample on a near-tie:
    # each moves two means by at most its size over the cluster's mass). An empty
    # cluster takes a far sample from another cluster, one copy of a repeated sample but
    # the whole weight of a weighted one (as in scikit-learn): then only labels compare.
    eps = FLOAT64_EPS if network == "nearest-centroid" else FLOAT32_EPS
    disagree = np.repeat(weighted.labels_, weights) != copies.labels_
    assert disagree.mean() <= (0.0 if network == "nearest-centroid" else 0.01)
    if any(r["empty_repaired"] for m in (weighted, copies) for r in m.history_):
        return
    smallest = np.bincount(copies.labels_, minlength=6).min()
    tolerance = len(repeated) * eps + disagree.sum() * np.abs(images).max() / max(smallest, 1)
    np.testing.assert_allclose(weighted.cluster_centers_, copies.cluster_centers_, atol=tolerance)


def test_zero_weights_leave_the_centroids_and_the_inertia(blobs):
    weights = np.ones(len(blobs))
    weights[::3] = 0.0
    model = lloyd(8, random_state=0).fit(blobs, sample_weight=weights)
    kept = lloyd(8, init=model.initial_centers_).fit(blobs[weights > 0])
    tolerance = len(blobs) * FLOAT64_EPS * np.abs(blobs).max()
    np.testing.assert_allclose(model.cluster_centers_, kept.cluster_centers_, atol=tolerance)
    assert model.score(blobs, sample_weight=weights) == pytest.approx(-model.inertia_)


def test_weights_in_the_learned_mode_weigh_the_means():
    pytest.importorskip("umap")
    X, _ = make_blobs(300, n_features=5, centers=3, random_state=0)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, size=len(X))
    params = {"steps_per_iter": 60, "umap_epochs": 30, "mixture_inits": 1, "n_neighbors": 10}
    model = NeuralKMeans(3, features="learned", learned_params=params, random_state=0)
    model.fit(X, sample_weight=weights)
    for k in range(3):
        members = model.labels_ == k
        expected = np.average(X[members], axis=0, weights=weights[members])
        np.testing.assert_allclose(model.cluster_centers_[k], expected, atol=1e-4)


def test_bad_weights_are_refused():
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="one weight per sample"):
        lloyd(2).fit(X, sample_weight=np.ones(19))
    with pytest.raises(ValueError, match="non-negative"):
        lloyd(2).fit(X, sample_weight=-np.ones(20))
    with pytest.raises(ValueError, match=r"weight.*zero|zero.*weight"):
        lloyd(2).fit(X, sample_weight=np.zeros(20))


# ------------------------------------------------------------------ restarts and init
def test_n_init_keeps_the_lowest_inertia_with_weights(blobs):
    weights = np.random.default_rng(2).uniform(0.1, 1.0, size=len(blobs))
    model = NeuralKMeans(8, network="mlp", n_init=3, max_iter=5, random_state=0)
    model.fit(blobs, sample_weight=weights)
    assert len(model.restart_inertias_) == 3
    # the lowest, or one of the same clustering within rounding (scikit-learn's rule)
    assert model.inertia_ == pytest.approx(min(model.restart_inertias_), rel=1e-9)
    assert model._n_init == 3


def test_a_callable_init_gets_the_samples_and_the_random_state(blobs):
    seen = {}

    def first_rows(X, n_clusters, random_state):
        seen.update(shape=X.shape, k=n_clusters, state=type(random_state).__name__)
        return X[:n_clusters] + 0.5

    model = lloyd(8, init=first_rows, n_init=1, max_iter=1).fit(blobs)
    assert seen == {"shape": blobs.shape, "k": 8, "state": "RandomState"}
    np.testing.assert_allclose(model.initial_centers_, blobs[:8] + 0.5)


def test_an_init_array_with_n_init_warns_and_runs_once(blobs):
    with pytest.warns(RuntimeWarning, match="performing only one init"):
        model = lloyd(8, init=blobs[:8], n_init=3).fit(blobs)
    assert len(model.restart_inertias_) == 1


# --------------------------------------------------------------------------- sparse
def _corpus() -> list[str]:
    """Three topics with their own vocabularies, 40 documents each (made here: no download)."""
    rng = np.random.default_rng(0)
    topics = [
        "goal match team player score league coach stadium season transfer",
        "market stock price trade bank interest inflation investor bond profit",
        "planet star galaxy telescope orbit comet astronaut rocket moon solar",
    ]
    shared = "the a of and to in is for on with".split()
    documents = []
    for words in topics:
        vocabulary = words.split()
        for _ in range(40):
            chosen = rng.choice(vocabulary, 12).tolist() + rng.choice(shared, 8).tolist()
            documents.append(" ".join(rng.permutation(chosen)))
    return documents


@pytest.mark.parametrize("network", ["nearest-centroid", "linear", "mlp"])
def test_sparse_tfidf_rows_cluster_like_their_dense_copy(network):
    rows = TfidfVectorizer().fit_transform(_corpus())
    topics = np.repeat([0, 1, 2], 40)
    options = {"network": network, "max_iter": 30, "random_state": 0, "init": "k-means++"}
    sparse = NeuralKMeans(3, **options).fit(rows)
    dense = NeuralKMeans(3, **options).fit(rows.toarray())
    assert adjusted_rand_score(topics, sparse.labels_) > 0.9
    np.testing.assert_array_equal(sparse.predict(rows), sparse.labels_)
    assert np.mean(sparse.labels_ == dense.labels_) >= 0.99
    assert sparse.transform(rows).shape == (120, 3)


def test_sparse_rows_are_never_made_dense_whole():
    """200,000 features: the whole matrix dense would take 480 MB, a batch takes 64 MB."""
    rows = scipy.sparse.random(300, 200_000, density=1e-4, format="csc", random_state=0)
    model = NeuralKMeans(3, network="linear", max_iter=2, random_state=0).fit(rows)
    assert model.labels_.shape == (300,) and model.cluster_centers_.shape == (3, 200_000)


def test_sparse_data_is_refused_by_the_cnn():
    rows = scipy.sparse.random(30, 64, density=0.2, format="csr", random_state=0)
    with pytest.raises(TypeError, match="needs dense samples"):
        NeuralKMeans(3, network="cnn", image_shape=(8, 8)).fit(rows)


# ------------------------------------------------- distances, probabilities, dtypes
def test_transform_gives_distances_and_predict_proba_probabilities(blobs):
    model = NeuralKMeans(8, network="mlp", max_iter=3, random_state=0).fit(blobs)
    distances = model.transform(blobs)
    # against the direct formula in float64: a handful of roundings per value
    expected = np.sqrt(((blobs[:, None, :] - model.cluster_centers_[None]) ** 2).sum(-1))
    np.testing.assert_allclose(distances, expected, rtol=1e3 * FLOAT64_EPS)
    np.testing.assert_allclose(distances, euclidean_distances(blobs, model.cluster_centers_))
    probabilities = model.predict_proba(blobs)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=10 * FLOAT32_EPS)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), model.predict(blobs))


def test_uint8_images_give_distances_in_their_own_units():
    images = (load_digits().images[:200] * 16).astype(np.uint8)
    model = NeuralKMeans(5, network="linear", max_iter=2, random_state=0).fit(images)
    flat = images.reshape(200, -1).astype(np.float64)
    expected = np.sqrt(((flat[:, None, :] - model.cluster_centers_[None]) ** 2).sum(-1))
    # the samples are scaled to [0, 1] in float32 and back: float32's precision
    np.testing.assert_allclose(model.transform(images), expected, rtol=64 * FLOAT32_EPS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_centres_keep_the_input_dtype(blobs, dtype):
    model = lloyd(8, random_state=0).fit(blobs.astype(dtype))
    assert model.cluster_centers_.dtype == dtype
    assert model.transform(blobs.astype(dtype)).dtype == dtype


def test_fewer_distinct_points_than_clusters_warns():
    X = np.repeat([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], 4, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"Number of distinct clusters \(3\)"):
        lloyd(5, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        lloyd(3, random_state=0).fit(X)


def test_compare_gives_kmeans_and_the_nearest_centroid_network_the_same_scores(tmp_path, capsys):
    """Both rows of ``compare`` start from the same k-means++ draws and stop by the same
    rule, so they report the same clusters (issue 12's command)."""
    import json

    from neural_kmeans.app.cli import main

    methods = ["kmeans", "nearest-centroid"]
    argv = ["compare", "--dataset", "digits", "--seed", "0", "1", "2", "--methods", *methods]
    assert main([*argv, "--quiet", "--out", str(tmp_path / "c")]) == 0, capsys.readouterr().err
    document = json.loads((tmp_path / "c" / "compare.json").read_text())
    kmeans, ours = (document["methods"][m]["runs"] for m in methods)
    for theirs, mine in zip(kmeans, ours, strict=True):
        assert mine["train"]["acc"] == theirs["train"]["acc"]
        assert mine["n_iter"] == theirs["n_iter"]
        # the digits are float32 here: scikit-learn sums their inertia in float32
        assert mine["inertia"] == pytest.approx(theirs["inertia"], rel=1797 * FLOAT32_EPS)
        assert f"{mine['inertia']:.6g}" == f"{theirs['inertia']:.6g}"  # as printed
