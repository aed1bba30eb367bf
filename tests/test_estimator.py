"""The estimator against exact references: Lloyd's K-means, separable blobs, itself."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs
from sklearn.metrics import adjusted_rand_score

from neural_kmeans import NeuralKMeans
from neural_kmeans.core.validation import is_channels_last

FLOAT32_EPS = float(np.finfo(np.float32).eps)
FLOAT64_EPS = float(np.finfo(np.float64).eps)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(3000, centers=6, cluster_std=1.0, center_box=(-20, 20), random_state=0)


@pytest.fixture(scope="module")
def digits_images():
    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("data", ["blobs", "overlapping"])
def test_nearest_centroid_equals_sklearn_lloyd(seed, data, blobs):
    if data == "blobs":
        X = blobs[0]
    else:  # overlapping clusters: many iterations, many changes of label
        X = np.random.default_rng(seed).normal(size=(2000, 5))
    rng = np.random.default_rng(seed)
    init = X[rng.choice(len(X), 6, replace=False)]
    ours = NeuralKMeans(6, network="nearest-centroid", init=init, max_iter=300, tol=0).fit(X)
    ref = KMeans(6, init=init, n_init=1, algorithm="lloyd", max_iter=300, tol=0).fit(X)
    # float64 data is clustered in float64: both sum up to n terms in another order, so
    # the centres agree to n ulps of the data's scale; equal labels rely on no sample
    # lying within that distance of a tie (continuous data).
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    tolerance = len(X) * FLOAT64_EPS
    scale = np.abs(X).max()
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=tolerance * scale)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=tolerance * scale**2)
    assert ours.converged_


@pytest.mark.parametrize("seed", range(5))
def test_mlp_separates_blobs_with_default_init(seed, blobs):
    X, y = blobs
    model = NeuralKMeans(6, network="mlp", random_state=seed).fit(X)
    assert adjusted_rand_score(y, model.labels_) >= 0.95


@pytest.mark.parametrize("network", ["mlp", "linear", "cnn", "nearest-centroid"])
def test_same_seed_gives_identical_labels(network, digits_images):
    """Bit-identical: the same process runs the same path on the same batch shapes."""
    X, _ = digits_images
    first = NeuralKMeans(10, network=network, max_iter=5, random_state=7).fit(X)
    second = NeuralKMeans(10, network=network, max_iter=5, random_state=7).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(first.cluster_centers_, second.cluster_centers_)


def test_global_random_state_is_neither_read_nor_changed(digits_images):
    X, _ = digits_images
    a = NeuralKMeans(10, network="cnn", max_iter=3, random_state=3).fit(X)
    # the legacy global generators are the ones under test here
    np.random.seed(123)  # noqa: NPY002
    torch.manual_seed(123)
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()  # noqa: NPY002
    b = NeuralKMeans(10, network="cnn", max_iter=3, random_state=3).fit(X)
    assert np.array_equal(a.labels_, b.labels_)
    assert np.array_equal(np.random.get_state()[1], np_state[1])  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize("network", ["mlp", "linear", "cnn", "nearest-centroid"])
def test_predict_on_training_data_equals_labels(network, digits_images):
    """Exact: predict runs the fit's inference routine on the same batches."""
    X, _ = digits_images
    model = NeuralKMeans(10, network=network, max_iter=4, random_state=0).fit(X)
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_empty_cluster_is_repaired_without_nan(blobs):
    X = blobs[0]
    # Two identical centroids: the nearest-centroid network gives every tie to the
    # first, so the second cluster starts empty; one centroid far from every sample.
    init = np.vstack([X[:4], X[3:4], [[1e3, 1e3]]])
    model = NeuralKMeans(6, network="nearest-centroid", init=init, max_iter=50).fit(X)
    first = model.history_[0]
    assert sorted(first["empty_repaired"]) == [4, 5]
    assert np.isfinite(model.cluster_centers_).all()
    assert all(np.isfinite(r["inertia"]) for r in model.history_)
    assert np.bincount(model.labels_, minlength=6).min() > 0


def test_repaired_centroid_takes_the_farthest_sample():
    X = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [30.0]])
    init = np.array([[0.0], [10.0], [1e6]])
    model = NeuralKMeans(3, network="nearest-centroid", init=init, max_iter=1).fit(X)
    # Cluster 2 is empty; the sample farthest from its centroid (30.0, in cluster 1
    # whose mean is 16.7) becomes its centroid and leaves cluster 1's mean.
    assert model.history_[0]["empty_repaired"] == [2]
    np.testing.assert_allclose(model.cluster_centers_.ravel(), [0.1, 10.05, 30.0])


def test_fitted_attributes_and_history(digits_images):
    X, _ = digits_images
    model = NeuralKMeans(10, network="mlp", max_iter=3, random_state=0, record_centroids=True).fit(
        X
    )
    assert model.cluster_centers_.shape == (10, 64)
    assert model.initial_centers_.shape == (10, 64)
    assert model.labels_.shape == (len(X),) and model.labels_.dtype == np.int64
    assert model.image_shape_ == (1, 8, 8)
    assert model.n_features_in_ == 64
    assert model.n_iter_ == len(model.history_) <= 3
    assert isinstance(model.network_, torch.nn.Module)
    for record in model.history_:
        assert set(record) >= {"iteration", "loss", "changed", "inertia", "sizes", "centroids"}
        assert sum(record["sizes"]) == len(X)
        assert record["centroids"].shape == (10, 64)
    assert model.history_[0]["changed"] == 1.0
    # Centroids are the means of their members, and the inertia is measured on them.
    assert model.history_[-1]["empty_repaired"] == []
    # float32 sums of at most n terms: n ulps of the largest value (|x| <= 1 here).
    rows = X.reshape(len(X), -1).astype(np.float64)
    tolerance = len(X) * FLOAT32_EPS
    for k in range(10):
        members = rows[model.labels_ == k]
        np.testing.assert_allclose(model.cluster_centers_[k], members.mean(0), atol=tolerance)
    # the inertia is a difference of sums (||x||² - ||S_k||²/n_k): its relative error
    # grows by ||x||² / inertia
    amplification = (rows**2).sum() / model.inertia_
    assert -model.score(X) == pytest.approx(model.inertia_, rel=amplification * tolerance)


def test_uint8_images_are_scaled_and_centres_in_input_units(digits_images):
    X, _ = digits_images
    X8 = np.round(X * 255).astype(np.uint8)
    model = NeuralKMeans(10, network="mlp", max_iter=3, random_state=0).fit(X8)
    assert model.cluster_centers_.max() > 1.5  # input units: 0..255
    members = X8.reshape(len(X8), -1)[model.labels_ == 0].astype(float)
    tolerance = len(X8) * FLOAT32_EPS * 255  # n ulps of float32, in 0..255 units
    np.testing.assert_allclose(model.cluster_centers_[0], members.mean(0), atol=tolerance)


def test_torch_input_gives_torch_output(digits_images):
    X, _ = digits_images
    tensor = torch.from_numpy(X)
    model = NeuralKMeans(10, network="mlp", max_iter=3, random_state=0)
    labels = model.fit_predict(tensor)
    assert isinstance(labels, torch.Tensor)
    np.testing.assert_array_equal(labels.numpy(), model.labels_)
    probs = model.predict_proba(tensor)
    assert isinstance(probs, torch.Tensor) and probs.shape == (len(X), 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(X)))
    distances = model.transform(tensor)
    assert isinstance(distances, torch.Tensor) and distances.shape == (len(X), 10)
    np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_channels_first_and_flat_rows_with_image_shape(digits_images):
    X, _ = digits_images
    nchw = X[:, None]
    flat = X.reshape(len(X), -1)
    a = NeuralKMeans(10, network="cnn", max_iter=2, random_state=0).fit(nchw)
    b = NeuralKMeans(10, network="cnn", max_iter=2, random_state=0, image_shape=(8, 8)).fit(flat)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    with pytest.raises(ValueError, match="image_shape"):
        NeuralKMeans(10, network="cnn").fit(flat)


def test_regression_channels_last_images_are_read_as_channels_first(digits_images):
    # (n, h, w, 3) colour images were read as 16 channels of 16x3 pixels: the learned
    # mode's ACC on tinted 16x16 digits was 0.16 (0.95 channels first).
    X, _ = digits_images
    rng = np.random.default_rng(0)
    colour = np.kron(X[:300], np.ones((2, 2)))[..., None] * rng.uniform(0.3, 1, (300, 1, 1, 3))
    first = np.ascontiguousarray(colour.transpose(0, 3, 1, 2)).astype(np.float32)
    last = colour.astype(np.float32)
    a = NeuralKMeans(10, network="cnn", max_iter=2, random_state=0).fit(first)
    b = NeuralKMeans(10, network="cnn", max_iter=2, random_state=0).fit(last)
    assert b.image_shape_ == (3, 16, 16)
    # the same array once converted, through the same path: the same fit, bit for bit
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(b.predict(last), b.labels_)
    assert is_channels_last((28, 28, 1)) and is_channels_last((32, 32, 4))
    assert not is_channels_last((3, 32, 32)) and not is_channels_last((3, 4, 3))


def test_callback_can_stop_the_loop(digits_images):
    X, _ = digits_images
    seen = []

    def stop_at_two(state):
        seen.append((state.iteration, state.record["changed"]))
        return state.iteration == 2

    model = NeuralKMeans(10, network="mlp", max_iter=10, callbacks=stop_at_two).fit(X)
    assert model.n_iter_ == 2 and [i for i, _ in seen] == [1, 2]


def test_custom_network_factory(digits_images):
    X, _ = digits_images
    shapes = []

    def factory(input_shape, n_clusters):
        shapes.append(input_shape)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, n_clusters))

    model = NeuralKMeans(10, network=factory, max_iter=2, random_state=0).fit(X)
    assert shapes == [(1, 8, 8)]
    assert model.labels_.max() < 10


def test_memory_mapped_input_gives_the_same_labels(tmp_path, digits_images):
    X, _ = digits_images
    path = tmp_path / "x.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    a = NeuralKMeans(10, network="mlp", max_iter=3, random_state=0).fit(X)
    b = NeuralKMeans(10, network="mlp", max_iter=3, random_state=0).fit(mapped)
    np.testing.assert_array_equal(a.labels_, b.labels_)


def test_batch_size_is_chosen_for_the_network(digits_images):
    X, _ = digits_images
    cnn = NeuralKMeans(10, network="cnn", max_iter=1, random_state=0, device="cpu").fit(X)
    mlp = NeuralKMeans(10, network="mlp", max_iter=1, random_state=0, device="cpu").fit(X)
    given = NeuralKMeans(10, network="mlp", max_iter=1, batch_size=100, random_state=0).fit(X)
    assert (cnn._batch_size(), mlp._batch_size(), given._batch_size()) == (256, 4096, 100)
    # The batch size does not change the clusters, up to the last bit of a float32
    # logit: matrix products of other shapes may round differently, which can flip a
    # sample lying on a tie (none in practice; at most 1 in 1,000 allowed).
    assert np.mean(given.labels_ == mlp.labels_) >= 1 - 1 / 1000


def test_the_command_line_lets_idle_openmp_threads_sleep_unless_the_user_chose(monkeypatch):
    """Regression: spinning OpenMP threads made the CNN 3.6x slower on a busy CPU; the
    command line (not the library) sets the policy, before torch is loaded."""
    from neural_kmeans.app.cli import configure_runtime

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    configure_runtime()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    configure_runtime()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize("network", ["mlp", "linear"])
def test_standardization_folded_into_the_first_layer_gives_the_same_outputs(network, digits_images):
    from neural_kmeans.core.assignment import fold_standardization

    X, _ = digits_images
    model = NeuralKMeans(10, network=network, max_iter=2, random_state=0).fit(X)
    folded = fold_standardization(model.network_)
    assert folded is not None and not any(
        type(m).__name__ == "Standardize" for m in folded.modules()
    )
    batch = torch.from_numpy(X.reshape(len(X), -1)).to(model.device_)
    with torch.no_grad():
        torch.testing.assert_close(folded(batch), model.network_(batch), rtol=1e-4, atol=1e-4)
    assert fold_standardization(NeuralKMeans(10, network="cnn", max_iter=1).fit(X).network_) is None
