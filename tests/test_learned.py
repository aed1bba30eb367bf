"""The learned mode (``features="learned"``): representation, self-labelling loop, API.

The end-to-end tests run a small, fast configuration on scikit-learn's 8x8 digits
(1,797 samples: below ``autoencoder_min_samples``, so the k-NN graph is built on the
pixels; the autoencoder runs in the tests that lower that threshold).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

pytest.importorskip("umap", reason="the learned mode needs umap-learn (the 'learned' extra)")

from neural_kmeans import NeuralKMeans
from neural_kmeans.core.assignment import accumulate_labels, inference_network
from neural_kmeans.core.centroids import centroid_means, inertia_from_sums
from neural_kmeans.core.metrics import evaluate
from neural_kmeans.core.networks import LearnedNetwork, Standardize
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.training import deterministic_kernels
from neural_kmeans.core.validation import InvalidParameterError
from neural_kmeans.io.checkpoint import FitInterrupted, checkpoint_info
from neural_kmeans.io.datasets import load_dataset
from neural_kmeans.representation import gradients
from neural_kmeans.representation import neighbours as neighbour_graphs
from neural_kmeans.representation.augmentation import random_affine
from neural_kmeans.representation.gradients import cell_geometry, gradient_histograms
from neural_kmeans.representation.neighbours import approximate_knn, exact_knn
from neural_kmeans.representation.self_labelling import (
    LearnedParams,
    MemberDraws,
    confident_members,
    learned_params,
    training_steps,
)

FLOAT32_EPS = float(np.finfo(np.float32).eps)

#: Fewer training steps than the default (2000): about 20 s on 2 cores.
FAST = {"steps_per_iter": 600}
#: Every stage, the autoencoder included (in place of the gradient histograms), in a
#: second or two.
TINY = {
    "image_features": "autoencoder",
    "autoencoder_hidden": (64,),
    "autoencoder_min_steps": 20,
    "autoencoder_epochs": 1,
    "autoencoder_min_samples": 0,
    "n_neighbors": 10,
    "umap_epochs": 50,
    "steps_per_iter": 20,
}


def learned(**options) -> NeuralKMeans:
    return NeuralKMeans(10, features="learned", **options)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_dataset("digits")
    return np.asarray(X), np.asarray(y)


@pytest.fixture(scope="module")
def digits_model(digits) -> NeuralKMeans:
    X, _ = digits
    return learned(learned_params=FAST, random_state=0).fit(X)


@pytest.mark.slow
def test_beats_kmeans_on_digits(digits, digits_model) -> None:
    X, y = digits
    kmeans_acc = [
        evaluate(y, KMeans(10, n_init=1, random_state=s).fit_predict(X.reshape(len(X), -1)))["acc"]
        for s in range(3)
    ]
    scores = evaluate(y, digits_model.labels_)
    # Measured: learned 0.88-0.89 (default steps: 0.88-0.89), K-means 0.67-0.80.
    assert scores["acc"] >= max(kmeans_acc) + 0.05, (scores, kmeans_acc)
    assert scores["nmi"] >= 0.85


@pytest.mark.slow
def test_model_is_consistent(digits, digits_model) -> None:
    X, _ = digits
    model = digits_model
    n = len(X)
    rows = X.reshape(n, -1)
    assert model.labels_.shape == (n,) and model.labels_.dtype == np.int64
    assert model.cluster_centers_.shape == model.initial_centers_.shape == (10, 64)
    assert model.embedding_.shape == (n, 10)
    assert model.n_iter_ == len(model.history_) >= 1
    assert set(model.timings_) >= {"features", "knn", "umap", "mixture", "loop", "total"}
    # The network alone clusters new samples, and agrees with the fit on the training ones.
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    np.testing.assert_array_equal(model.predict(rows), model.labels_)
    np.testing.assert_allclose(model.predict_proba(X[:5]).sum(axis=1), 1.0, rtol=1e-5)
    # Each centroid is its members' mean (input units); the inertia is around them. The
    # model sums float32 batches of 1,024 rows: each value is off by at most 1,024 ulps
    # of the largest partial sum (recursive summation's bound), so the tolerances
    # scale with that count and float32's epsilon (no bit-exactness is assumed).
    rows64 = rows.astype(np.float64)
    expected = np.stack([rows64[model.labels_ == k].mean(0) for k in range(10)])
    batch_error = 1024 * FLOAT32_EPS
    np.testing.assert_allclose(
        model.cluster_centers_, expected, rtol=batch_error, atol=batch_error * np.abs(rows).max()
    )
    inertia = ((rows64 - expected[model.labels_]) ** 2).sum()
    # inertia = sum ||x||² - sum_k ||S_k||² / n_k: the error of the sums, relative to
    # ||x||², grows by ||x||² / inertia in the difference.
    amplification = (rows64**2).sum() / inertia
    assert model.inertia_ == pytest.approx(inertia, rel=amplification * batch_error)
    # the record's inertia comes from the pass's sums, inertia_ from the distances
    assert model.history_[-1]["inertia"] == pytest.approx(
        model.inertia_, rel=amplification * batch_error
    )
    assert model.score(X) == pytest.approx(-inertia, rel=amplification * batch_error)


@pytest.mark.slow
def test_deterministic_for_a_seed(digits, digits_model) -> None:
    X, _ = digits
    again = learned(learned_params=FAST, random_state=0).fit(X)
    np.testing.assert_array_equal(again.labels_, digits_model.labels_)
    np.testing.assert_array_equal(again.embedding_, digits_model.embedding_)
    np.testing.assert_array_equal(again.cluster_centers_, digits_model.cluster_centers_)


def test_fit_never_reads_labels(digits) -> None:
    """Labels given, shuffled or absent: the same clusters (the autoencoder included)."""
    X, y = digits
    X, y = X[:400], y[:400]
    shuffled = np.random.default_rng(0).permutation(y)
    without = learned(learned_params=TINY, random_state=3).fit(X).labels_
    with_labels = learned(learned_params=TINY, random_state=3).fit(X, y).labels_
    with_shuffled = learned(learned_params=TINY, random_state=3).fit(X, shuffled).labels_
    np.testing.assert_array_equal(with_labels, without)
    np.testing.assert_array_equal(with_shuffled, without)


def test_global_random_state_untouched(digits) -> None:
    """The global random states, and torch's thread count (which umap-learn's numba
    would reset to all cores), are as they were."""
    X, _ = digits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()  # noqa: NPY002 (the legacy global state is the point)
    model = learned(learned_params=TINY, random_state=1).fit(X[:300])
    assert model.timings_["features"] > 0
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1])
    assert after[2:] == numpy_state[2:]
    try:
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_rows_and_callbacks() -> None:
    """Feature rows (no images) take the MLP; callbacks see every iteration and can stop."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(600, n_features=20, centers=4, cluster_std=1.0, random_state=0)
    seen = []

    def stop_after_first(state) -> bool:
        seen.append((state.iteration, state.record["changed"], state.centroids.shape[0]))
        return True

    params = {"n_neighbors": 10, "max_iter": 3, "steps_per_iter": 100}
    model = NeuralKMeans(
        4, features="learned", learned_params=params, random_state=0, callbacks=stop_after_first
    ).fit(X)
    assert len(seen) == 1 and seen[0][2] == 4 and model.n_iter_ == 1
    assert evaluate(y, model.labels_)["acc"] > 0.95
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    # the learned network on rows, behind the fixed standardisation the MLP also has
    assert isinstance(model.network_[1], LearnedNetwork)
    assert isinstance(model.network_[0], Standardize)


@pytest.mark.slow
def test_save_and_load_predict_alike(digits, digits_model, tmp_path) -> None:
    X, _ = digits
    path = tmp_path / "learned.nkm"
    digits_model.save(path)
    loaded = NeuralKMeans.load(path)
    assert loaded.features == "learned" and loaded.learned_params == FAST
    np.testing.assert_array_equal(loaded.predict(X), digits_model.labels_)
    np.testing.assert_array_equal(loaded.cluster_centers_, digits_model.cluster_centers_)
    # the learned space and the stage timings are kept too
    np.testing.assert_array_equal(loaded.embedding_, digits_model.embedding_)
    assert loaded.timings_ == digits_model.timings_


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"features": "learnt"}, "Did you mean features='learned'"),
        ({"features": "learned", "learned_params": {"epochs": 3}}, "unknown names 'epochs'"),
        ({"features": "learned", "learned_params": [("max_iter", 2)]}, "'dict' or None"),
        (
            {"features": "learned", "learned_params": {"image_features": "pixels"}},
            "'image_features' parameter of learned_params must be a str among",
        ),
        # regression: these failed deep inside the fit (an IndexError in the k-NN graph,
        # batch normalisation's ValueError), after the work before them
        (
            {"features": "learned", "learned_params": {"n_neighbors": 0}},
            r"'n_neighbors' parameter of learned_params must be an int in the range \[2, inf\)",
        ),
        ({"features": "learned", "learned_params": {"batch_size": 1}}, "'batch_size' parameter"),
        ({"features": "learned", "learned_params": {"confident_fraction": 0}}, r"\(0.0, 1.0\]"),
        ({"features": "learned", "learned_params": {"tol": True}}, "tol must be a number, not"),
        (
            {"features": "learned", "learned_params": {"autoencoder_hidden": [64, 0]}},
            "autoencoder_hidden must be a list of positive layer widths",
        ),
    ],
)
def test_bad_options_are_refused_before_work(digits, options, message) -> None:
    X, _ = digits
    with pytest.raises(InvalidParameterError, match=message):
        NeuralKMeans(10, **options).fit(X)


def test_every_learned_param_has_a_constraint_its_default_meets() -> None:
    from dataclasses import asdict

    from neural_kmeans.representation.self_labelling import learned_params_constraints

    defaults = asdict(LearnedParams())
    assert set(learned_params_constraints()) == set(defaults) - {"autoencoder_hidden"}
    assert LearnedParams() == learned_params(defaults)


def test_cluster_sums_means_and_inertia_match_numpy() -> None:
    """The sums, means and inertia of given clusters (the learned mode's step 4) against
    numpy in float64, with tolerances from float32's epsilon and the batch of 128 rows."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(1000, 7)).astype(np.float32)
    labels = rng.integers(0, 4, size=1000)
    labels[labels == 2] = 1  # cluster 2 empty
    samples = SampleBatches(rows, (7,), torch.float32, torch.device("cpu"))
    sums = accumulate_labels(samples, torch.from_numpy(labels), 4, 128)
    means = centroid_means(sums.sums, sums.counts, torch.full((4, 7), 9.0, dtype=torch.float64))
    rows64 = rows.astype(np.float64)
    tolerance = 128 * FLOAT32_EPS
    for k in (0, 1, 3):
        np.testing.assert_allclose(means[k], rows64[labels == k].mean(0), rtol=0, atol=tolerance)
    np.testing.assert_array_equal(means[2], 9.0)  # an empty cluster keeps its centroid
    expected = sum(
        ((rows64[labels == k] - rows64[labels == k].mean(0)) ** 2).sum() for k in (0, 1, 3)
    )
    amplification = (rows64**2).sum() / expected
    assert inertia_from_sums(sums, means) == pytest.approx(expected, rel=amplification * tolerance)


def test_checkpoint_after_the_first_stage_resumes_to_the_same_fit(digits, tmp_path) -> None:
    """The learned mode checkpoints its costly first stage and every iteration."""
    X, _ = digits
    X = X[:400]
    params = {**TINY, "max_iter": 2, "bfloat16": False}
    reference = learned(learned_params=params, random_state=5).fit(X)

    def interrupt(state) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(FitInterrupted):
        learned(
            learned_params=params, random_state=5, checkpoint_dir=tmp_path, callbacks=interrupt
        ).fit(X)
    assert checkpoint_info(tmp_path)["iteration"] == 1
    resumed = learned(learned_params=params, random_state=5, checkpoint_dir=tmp_path)
    resumed.fit(X, resume=True)
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    np.testing.assert_array_equal(resumed.embedding_, reference.embedding_)
    assert resumed.n_iter_ == reference.n_iter_


def test_regression_cudnn_free_choice_gave_a_gpu_resume_other_labels() -> None:
    """On a GPU the checkpoint test above failed (1 label of 400): cuDNN's default
    convolutions add their gradients with atomics in any order, so the same seed gave
    other weights. A fit runs with its deterministic ones, as they were before after it."""
    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = False, True
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with deterministic_kernels(torch.device("cuda", 0)):
                assert (cudnn.deterministic, cudnn.benchmark) == (True, False)
                raise RuntimeError("inside")
        assert (cudnn.deterministic, cudnn.benchmark) == (False, True)
        with deterministic_kernels(torch.device("cpu")):  # the CPU's kernels: left alone
            assert (cudnn.deterministic, cudnn.benchmark) == (False, True)
        if torch.cuda.is_available():
            seen = []
            model = learned(learned_params=TINY, random_state=0, device="cuda")
            model.set_params(callbacks=lambda state: seen.append(cudnn.deterministic))
            model.fit(np.asarray(load_dataset("digits").data)[:200])
            assert seen and all(seen)
            assert cudnn.deterministic is False
    finally:
        cudnn.deterministic, cudnn.benchmark = before


def test_exact_knn_matches_scikit_learn() -> None:
    points = np.random.default_rng(0).normal(size=(500, 6)).astype(np.float32)
    indices, distances = exact_knn(torch.from_numpy(points), 8, chunk_size=64)
    expected_d, expected_i = NearestNeighbors(n_neighbors=8).fit(points).kneighbors(points)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(distances, expected_d, atol=1e-4)
    np.testing.assert_array_equal(indices[:, 0], np.arange(500))


def test_regression_exact_knn_puts_each_duplicate_first_in_its_own_row() -> None:
    """A point with exact twins: its own row starts with itself at distance 0 (the
    layout and the confidence read the first column as the point), its twins next (at
    distance 0 up to rounding); from the expanded squared distances top-k used to rank
    a twin first."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 5)).astype(np.float32)
    points[[10, 11, 12, 13]] = points[40]  # five copies of one point
    indices, distances = exact_knn(torch.from_numpy(points), 8, chunk_size=64)
    np.testing.assert_array_equal(indices[:, 0], np.arange(300))
    assert np.all(distances[:, 0] == 0) and np.all(np.diff(distances, axis=1) >= 0)
    copies = {10, 11, 12, 13, 40}
    # a twin's distance comes from ||x||² - 2 x·y + ||y||² (float32 sums of 5 terms),
    # so it is zero only within sqrt(4 (d + 2) eps) ||x||, not exactly
    near = np.sqrt(4 * 7 * FLOAT32_EPS) * np.linalg.norm(points[40])
    for i in copies:
        assert set(indices[i, :5]) == copies and np.all(distances[i, 1:5] <= near)
    # the other rows hold the exact neighbours, as scikit-learn finds them (the copies,
    # at equal distances, in either order: each counted as the one point they copy)
    expected_d, expected_i = NearestNeighbors(n_neighbors=8).fit(points).kneighbors(points)
    others = np.setdiff1d(np.arange(300), list(copies))

    def as_points(found: np.ndarray) -> np.ndarray:
        return np.sort(np.where(np.isin(found, list(copies)), 40, found), axis=1)

    np.testing.assert_array_equal(as_points(indices[others]), as_points(expected_i[others]))
    np.testing.assert_allclose(distances[others], expected_d[others], atol=1e-4)


def test_approximate_knn_against_the_exact_graph(monkeypatch, capsys) -> None:
    """NN-descent: nearly every exact neighbour, each point first at distance 0 (also
    the duplicates'), the same graph again for the same seed; knn_graph takes it above
    EXACT_MAX_POINTS."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 12)) * 4
    points = (centres[rng.integers(0, 10, 3000)] + rng.normal(size=(3000, 12))).astype(np.float32)
    points[1] = points[0]  # a duplicate: its twin is as near as itself
    exact_i, _ = exact_knn(torch.from_numpy(points), 15)
    indices, distances = approximate_knn(torch.from_numpy(points), 15, seed=0)
    assert indices.shape == (3000, 15) and indices.dtype == np.int64
    assert distances.dtype == np.float32
    np.testing.assert_array_equal(indices[:, 0], np.arange(3000))
    assert np.all(distances[:, 0] == 0) and np.all(np.diff(distances, axis=1) >= 0)
    found = np.mean([len(set(a) & set(b)) / 15 for a, b in zip(indices, exact_i, strict=True)])
    assert found > 0.95, found
    # Euclidean distances (not squared) to the neighbours found: against float64, a
    # float32 sum of 12 squared differences rounds within 12 epsilons, its root within half
    expected = np.linalg.norm(points[:, None].astype(np.float64) - points[indices], axis=-1)
    np.testing.assert_allclose(distances, expected, rtol=12 * FLOAT32_EPS, atol=0)
    again, _ = approximate_knn(torch.from_numpy(points), 15, seed=0)
    np.testing.assert_array_equal(again, indices)
    monkeypatch.setattr(neighbour_graphs, "EXACT_MAX_POINTS", 2999)
    np.testing.assert_array_equal(
        neighbour_graphs.knn_graph(torch.from_numpy(points), 15, verbose=1)[0], indices
    )
    assert "of 3,000 samples: approximate (NN-descent" in capsys.readouterr().err
    monkeypatch.setattr(neighbour_graphs, "EXACT_MAX_POINTS", 3000)
    np.testing.assert_array_equal(
        neighbour_graphs.knn_graph(torch.from_numpy(points), 15)[0], exact_i
    )


def test_confident_members() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # Sample 3 (cluster 0) has neighbours of cluster 1; sample 7 (cluster 1) of cluster 0.
    neighbours = torch.tensor(
        [[1, 2], [0, 2], [0, 1], [4, 5], [5, 6], [4, 6], [4, 5], [0, 1]], dtype=torch.int64
    )
    embedding = np.arange(8, dtype=np.float64)[:, None]
    centroids = np.array([[1.5], [5.5]])
    members = confident_members(labels, neighbours, embedding, centroids, 3, 0.75)
    assert sorted(members[0]) == [0, 1, 2] and sorted(members[1]) == [4, 5, 6]
    assert len(members[2]) == 0
    # Among equally confident members, the nearest to the centroid come first.
    assert set(members[0][:2]) == {1, 2}


def test_bfloat16_training_runs_where_the_processor_has_it(digits, monkeypatch) -> None:
    """The bfloat16 path (on by default where supported; pinned off elsewhere in the
    tests): it runs and clusters every sample; no accuracy is held to it."""
    from neural_kmeans.representation.autoencoder import use_bfloat16

    monkeypatch.delenv("NEURAL_KMEANS_BFLOAT16")
    if not use_bfloat16(torch.device("cpu")):
        pytest.skip("this processor has no bfloat16 units (oneDNN)")
    X, _ = digits
    model = learned(learned_params={**TINY, "bfloat16": True}, random_state=0).fit(X[:300])
    assert model.labels_.shape == (300,) and np.isfinite(model.inertia_)
    monkeypatch.setenv("NEURAL_KMEANS_BFLOAT16", "0")
    assert not use_bfloat16(torch.device("cpu"))


def test_random_affine_is_seeded_and_keeps_shape() -> None:
    images = torch.rand(4, 1, 28, 28)
    first = random_affine(images, torch.Generator().manual_seed(0))
    second = random_affine(images, torch.Generator().manual_seed(0))
    assert first.shape == images.shape
    torch.testing.assert_close(first, second)
    unchanged = random_affine(images, torch.Generator().manual_seed(0), 0.0, 0.0)
    torch.testing.assert_close(unchanged, images, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 9, 11), (1, 1, 1), (20,)])
def test_network_takes_rows_or_samples_and_freezes(shape) -> None:
    network = LearnedNetwork(shape, 7)
    assert network.training and all(layer.training for layer in network.modules())
    network.eval()
    x = torch.rand(5, *shape)
    out = network(x)
    assert out.shape == (5, 7)
    torch.testing.assert_close(network(x.reshape(5, -1)), out)
    frozen = inference_network(network, torch.device("cpu"))
    torch.testing.assert_close(frozen(x), out, atol=1e-5, rtol=1e-4)


def test_regression_one_pixel_images_fit() -> None:
    """Images of 1x1 pixels: measuring the network's width ran its batch norm on one
    value per channel in training mode, a ValueError before any fit."""
    X = np.random.default_rng(0).integers(0, 256, (200, 1, 1), dtype=np.uint8)
    model = learned(learned_params=TINY | {"image_features": "gradients"}, random_state=0)
    labels = model.set_params(n_clusters=3).fit(X).labels_
    assert labels.shape == (200,) and model.predict(X[:5]).shape == (5,)


def test_regression_large_images_are_seen_averaged_down() -> None:
    """96x96 images cost the network 15 times a 28x28 step (10,000 images: 170 s in
    the loop): from 64 pixels a side it first averages f x f blocks, the same network
    on the averaged images; smaller images are seen whole."""
    network = LearnedNetwork((3, 96, 96), 7).eval()
    assert isinstance(network.body[0], torch.nn.AvgPool2d)
    x = torch.rand(4, 3, 96, 96)
    torch.testing.assert_close(network.body[1:](torch.nn.functional.avg_pool2d(x, 3)), network(x))
    for shape in [(1, 28, 28), (3, 63, 200), (1, 8, 8)]:
        layers = LearnedNetwork(shape, 7).body
        assert not any(isinstance(layer, torch.nn.AvgPool2d) for layer in layers)


def test_hidden_features_are_the_last_layers_input() -> None:
    for shape in [(1, 28, 28), (3, 96, 96), (1, 8, 8), (20,)]:
        network = LearnedNetwork(shape, 7).eval()
        x = torch.rand(4, *shape)
        hidden = network.hidden(x)
        assert hidden.shape == (4, network.body[-1].in_features)
        torch.testing.assert_close(network.body[-1](hidden), network(x))


@pytest.mark.parametrize(
    ("shape", "rounds", "searches"), [((8, 8), 1, 2), ((8, 8), 0, 1), ((64,), 1, 1)]
)
def test_images_find_their_first_clusters_again_beside_a_networks_features(
    digits, monkeypatch, shape, rounds, searches
) -> None:
    """refine_rounds: for images, a network learns the first clusters and the graph,
    layout and mixture are made again from the first space (unit rows) beside its
    hidden features (unit rows, square-rooted); rows take no such round."""
    import neural_kmeans.representation.self_labelling as self_labelling

    spaces: list[torch.Tensor] = []
    search = self_labelling.LearnedStart._clusters

    def recorded(start, codes, timings):
        spaces.append(codes.clone())
        return search(start, codes, timings)

    monkeypatch.setattr(self_labelling.LearnedStart, "_clusters", recorded)
    X = digits[0][:300].reshape(300, *shape)
    params = TINY | {"image_features": "gradients", "refine_rounds": rounds}
    model = learned(learned_params=params, random_state=0).fit(X)
    assert len(spaces) == searches
    assert ("refine" in model.timings_) == (searches == 2)
    if searches == 2:
        first, refined = spaces
        width = LearnedNetwork((1, 8, 8), 10).body[-1].in_features
        assert refined.shape == (300, first.shape[1] + width)
        torch.testing.assert_close(
            refined[:, : first.shape[1]], self_labelling._unit(first.clone())
        )
        hidden = refined[:, first.shape[1] :]
        assert bool((hidden >= 0).all())
        norms = hidden.double().norm(dim=1)
        assert bool(((norms - 1).abs() < 10 * FLOAT32_EPS * math.sqrt(width)).all())


def test_regression_large_images_are_described_in_small_batches(monkeypatch) -> None:
    """The gradient histograms of 4,096 images at a time took 7 GiB on 96x96x3 images:
    a batch holds at most HISTOGRAM_BATCH_VALUES pixel values."""
    import neural_kmeans.representation.self_labelling as self_labelling

    seen: list[int] = []
    describe = self_labelling.histogram_features

    def recorded(batches):
        batches = list(batches)
        seen.extend(len(batch) for batch in batches)
        return describe(batches)

    monkeypatch.setattr(self_labelling, "histogram_features", recorded)
    monkeypatch.setattr(self_labelling, "HISTOGRAM_BATCH_VALUES", 3 * 20 * 20 * 16)
    images = np.random.default_rng(0).integers(0, 256, (50, 20, 20, 3), dtype=np.uint8)
    model = learned(learned_params=TINY | {"image_features": "gradients"}, random_state=0)
    model.set_params(n_clusters=3).fit(images)
    assert seen == [16, 16, 16, 2]


@pytest.mark.slow
def test_cli_compare_with_the_learned_method(tmp_path, capsys) -> None:
    """``compare --methods ... learned``: the learned mode beside the pixel networks; the
    loop options it shares (--max-iter) apply to it."""
    import json

    from neural_kmeans.app.cli import main

    out = tmp_path / "c"
    methods = ["mlp", "nearest-centroid", "learned", "kmeans"]
    argv = ["compare", "--dataset", "moons", "--methods", *methods, "--max-iter", "2"]
    status = main([*argv, "--seed", "0", "--quiet", "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    document = json.loads((out / "compare.json").read_text())
    assert list(document["methods"]) == methods
    learned_run = document["methods"]["learned"]["runs"][0]
    assert 1 <= learned_run["n_iter"] <= 2
    assert learned_run["train"]["acc"] >= 0.9  # two moons: K-means gets about 0.75
    assert document["config"]["max_iter"]["learned"] == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--method", "learnt"],
        ["compare", "--methods", "learnt"],
        ["sweep", "--methods", "learnt"],
    ],
)
def test_cli_method_names_are_checked(argv, capsys) -> None:
    from neural_kmeans.app.cli import main

    assert main(argv) == 2
    assert "invalid choice: 'learnt'" in capsys.readouterr().err


def test_cli_refuses_loop_options_the_learned_mode_does_not_use(capsys) -> None:
    """Honest options: --steps-per-iter would be recorded and ignored: refused instead."""
    from neural_kmeans.app.cli import main

    assert main(["run", "--method", "learned", "--steps-per-iter", "5"]) == 2
    assert "--steps-per-iter does not apply to learned" in capsys.readouterr().err


def test_gradient_histograms(monkeypatch) -> None:
    """Shape, unit rows, brightness invariance and an edge's single orientation."""
    assert cell_geometry(28, 28) == (4, 4)
    assert cell_geometry(8, 8) == (2, 1)  # small images: 2-pixel cells a pixel apart
    images = torch.rand(6, 1, 28, 28)
    features = gradient_histograms(images)
    assert features.shape == (6, 9 * 7 * 7) and features.dtype == torch.float32
    # rows of unit length: 441 squared terms, each rounded within float32's epsilon
    unit = torch.ones(6)
    torch.testing.assert_close(features.norm(dim=1), unit, rtol=441 * FLOAT32_EPS, atol=0)
    # scaling the brightness scales every gradient alike: the same histograms
    torch.testing.assert_close(gradient_histograms(3 * images), features)
    # a vertical edge: horizontal gradients only, all in the first orientation bin
    edge = torch.zeros(1, 1, 28, 28)
    edge[..., 14:] = 1.0
    bins = gradient_histograms(edge).reshape(9, 7, 7)
    assert bins[0].sum() > 0 and torch.count_nonzero(bins[1:]) == 0
    # a blank image has no gradient: zeros, not NaN; colour channels add up
    assert torch.count_nonzero(gradient_histograms(torch.zeros(2, 1, 8, 8))) == 0
    assert gradient_histograms(torch.rand(2, 3, 9, 11)).shape[0] == 2
    # images under 16 pixels a side: their gradients taken on them enlarged (bilinear,
    # 8x8 by 2: 2-pixel cells, 8 a side), the very same computation as enlarged by hand,
    # and not moved to their centre (16x16 images are)
    small = torch.rand(3, 1, 8, 8)
    enlarged = torch.nn.functional.interpolate(
        small, scale_factor=2.0, mode="bilinear", align_corners=False
    )
    assert not torch.equal(gradient_histograms(small), gradient_histograms(enlarged))
    monkeypatch.setattr(gradients, "centred", lambda votes: votes)
    assert torch.equal(gradient_histograms(small), gradient_histograms(enlarged))
    assert gradient_histograms(small).shape == (3, 9 * 8 * 8)


def test_regression_moved_images_are_described_alike() -> None:
    """MNIST's test images moved at random by up to 4 pixels clustered at ACC 0.65-0.79
    (0.98 in place): the histograms kept each edge's place in the frame. They are now
    taken about the centre of mass of the gradients, so an image moved within its frame
    gives the same histograms, within float32's rounding of the sums of its 20 x 20
    pixels, where the nearest other digit is at least 0.1 away."""
    digits = torch.as_tensor(np.asarray(load_dataset("digits").data)[:50]).float()[:, None]
    here, there = torch.zeros(2, 50, 1, 20, 20)
    here[..., 4:12, 4:12] = digits
    there[..., 9:17, 7:15] = digits
    features = gradient_histograms(here)
    tolerance = math.sqrt(FLOAT32_EPS * 20 * 20)
    torch.testing.assert_close(gradient_histograms(there), features, rtol=0, atol=tolerance)
    nearest_other = torch.cdist(features, features).fill_diagonal_(math.inf).min()
    assert nearest_other > 0.1 > tolerance


@pytest.mark.parametrize("balanced", [False, True])
def test_member_draws_follow_the_cluster_sizes(balanced) -> None:
    """Clusters drawn in proportion to their sizes (or equally when balanced), each
    share within 5 binomial standard deviations of its expectation."""
    sizes = [900, 90, 10]
    starts = np.cumsum([0, *sizes])
    members = [np.arange(starts[k], starts[k + 1]) for k in range(3)] + [np.array([], int)]
    draws = MemberDraws(members, None, balanced)
    n = 30000
    chosen = draws(n, torch.Generator().manual_seed(0)).numpy()
    counts = np.bincount(np.searchsorted(starts, chosen, side="right") - 1, minlength=3)
    expected = np.full(3, 1 / 3) if balanced else np.array(sizes) / sum(sizes)
    spread = np.sqrt(n * expected * (1 - expected))
    assert np.all(np.abs(counts - n * expected) <= 5 * spread), counts
    assert draws.n_members == 1000


def test_training_steps_grow_with_the_samples_up_to_a_ceiling() -> None:
    params = LearnedParams()  # 10 passes of 128, at least 500, at most 2000 steps
    assert training_steps(params, 1000) == 500
    assert training_steps(params, 12800) == 1000
    assert training_steps(params, 70000) == 2000


def _assert_every_stage_reported(err: str, first: str, last: str) -> None:
    """A line for every stage of a learned fit (from ``first`` to ``last``), and a bar for
    each long one, in ``err``."""
    stages = ("features: ", "k-nearest neighbours: ", "UMAP: ", "Gaussian mixture: ")
    for stage in (first, *stages, last):
        assert stage in err, (stage, err)
    for bar in ("autoencoder", "UMAP layout", "self-labelled network"):
        assert f"{bar}:" in err, (bar, err)


def test_verbose_reports_every_stage(digits, capsys) -> None:
    """verbose=1: a line per stage with its time, bars for the long ones."""
    X, _ = digits
    learned(learned_params=TINY, random_state=0, verbose=1).fit(X[:300])
    err = capsys.readouterr().err
    _assert_every_stage_reported(err, "learned features: 300 images", "iteration   1")


@pytest.mark.slow
def test_beats_kmeans_on_unbalanced_digits(digits) -> None:
    """Digits with class sizes from 174 down to 17 (1:10, the benchmark's cut): no
    choice of the learned mode assumes equal clusters."""
    X, y = digits
    rng = np.random.RandomState(0)
    smallest = np.bincount(y).min()
    keep = np.sort(
        np.concatenate(
            [
                rng.choice(np.flatnonzero(y == c), int(smallest * 10.0 ** (-c / 9)), replace=False)
                for c in range(10)
            ]
        )
    )
    X, y = X[keep], y[keep]
    assert len(y) == 707 and np.bincount(y)[0] >= 10 * np.bincount(y)[9]
    rows = X.reshape(len(X), -1)
    kmeans = [
        evaluate(y, KMeans(10, n_init=1, random_state=s).fit_predict(rows))["acc"] for s in range(3)
    ]
    scores = evaluate(y, learned(random_state=0).fit(X).labels_)
    # Measured: learned 0.854 (seed 1: 0.851), K-means 0.748-0.792.
    assert scores["acc"] >= max(kmeans) + 0.03, (scores, kmeans)


def test_missing_umap_is_refused_before_any_work(digits, monkeypatch) -> None:
    """The Python API: an ImportError with the install command from fit, at once."""
    X, _ = digits
    monkeypatch.setitem(sys.modules, "umap", None)  # find_spec("umap") is None: not installed
    with pytest.raises(
        ImportError, match=r'needs umap-learn: pip install "neural-kmeans\[learned\]"'
    ):
        learned(verbose=1).fit(X[:300])


@pytest.fixture
def tiny_learned_defaults(monkeypatch) -> None:
    """The command line's learned fits with :data:`TINY`'s settings (seconds, not minutes)."""
    from neural_kmeans.representation import self_labelling

    original = self_labelling.learned_params
    monkeypatch.setattr(
        self_labelling,
        "learned_params",
        lambda overrides=None: original({**TINY, **(overrides or {})}),
    )


def test_cli_reports_every_learned_stage_unless_quiet(
    digits, tmp_path, capsys, tiny_learned_defaults
) -> None:
    """``run --method learned``: a line per stage with its time and bars for the long
    ones on standard error by default; ``--quiet``: nothing there."""
    from neural_kmeans.app.cli import main

    X, y = digits
    data = tmp_path / "digits.npz"
    np.savez(data, X=X[:300], y=y[:300])
    argv = ["run", "--dataset", str(data), "--method", "learned", "--no-kmeans"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    _assert_every_stage_reported(
        err, "learned features: 300 images of 1x8x8", "[learned K=10 seed=0] done"
    )
    assert "warning:" not in err  # umap-learn's "Tensorflow not installed" is not news
    # Regression: the library's own iteration line (in the data's 0-255 units) was
    # printed beside the command line's (in its [0, 1] units): one line, one unit.
    iterations = [line for line in err.splitlines() if "iteration" in line and "loss" in line]
    assert iterations and all(line.startswith("[learned K=10 seed=0]") for line in iterations)
    assert main([*argv, "--quiet", "--out", str(tmp_path / "b")]) == 0
    assert capsys.readouterr().err == ""
