"""Bad input through the estimator: every case a clear ValueError or TypeError, before work.

And the loop's numerical guards: a NaN or diverging network never reaches the outputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_digits, make_blobs

import neural_kmeans.estimator.kmeans as estimator_module
from neural_kmeans import NeuralKMeans
from neural_kmeans.core.networks import cnn
from neural_kmeans.core.validation import (
    CNN_MIN_SIZE,
    DivergenceError,
    InvalidParameterError,
    check_data_for_params,
    check_finite,
)

ROWS = np.random.default_rng(0).normal(size=(30, 4))
SMALL_IMAGES = np.random.default_rng(1).random((30, 4, 4))
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def with_value(X: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    X = X.copy()
    X[index] = value
    return X


@pytest.fixture
def no_work(monkeypatch):
    """Make any start of the loop's work fail loudly: the checks must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the fit started working before rejecting its input")

    monkeypatch.setattr(estimator_module, "start_state", forbidden)
    monkeypatch.setattr(estimator_module, "SampleBatches", forbidden)


# Each case: (parameters, X, exception type, a regex the message must match: the
# problem and the fix).
BAD_FITS = {
    "nan": ({}, with_value(ROWS, (3, 2), np.nan), ValueError, r"NaN .*index \(3, 2\).*impute"),
    "inf": ({}, with_value(ROWS, (5, 1), np.inf), ValueError, r"infinity .*index \(5, 1\)"),
    "-inf in images": (
        {"network": "mlp"},
        with_value(SMALL_IMAGES, (2, 3, 1), -np.inf),
        ValueError,
        r"infinity .*\(2, 3, 1\).*nan_to_num",
    ),
    "fewer samples than clusters": (
        {"n_clusters": 31},
        ROWS,
        ValueError,
        r"n_samples=30 should be >= n_clusters=31: give more samples or ask for fewer",
    ),
    "n_clusters 0": (
        {"n_clusters": 0},
        ROWS,
        ValueError,
        r"n_clusters' .*int in the range \[1, inf\)\. Got 0 .*n_clusters=10",
    ),
    "n_clusters negative": ({"n_clusters": -2}, ROWS, ValueError, r"range \[1, inf\)\. Got -2"),
    "n_clusters float": (
        {"n_clusters": 2.5},
        ROWS,
        TypeError,
        r"n_clusters' .*int in the range .*Got 2.5 .*n_clusters=10",
    ),
    "n_clusters string": ({"n_clusters": "3"}, ROWS, TypeError, r"Got '3' instead"),
    "n_clusters bool": (
        {"n_clusters": True},
        ROWS,
        TypeError,
        r"n_clusters must be an integer, not a bool",
    ),
    "no samples": ({}, np.empty((0, 4)), ValueError, r"0 sample\(s\)"),
    "no features": ({}, np.empty((5, 0)), ValueError, r"0 feature\(s\)"),
    "images of no pixels": ({}, np.empty((5, 0, 3)), ValueError, r"hold no values"),
    "1-d": ({}, np.arange(10.0), ValueError, r"(?s)Expected 2D array.*Reshape your data"),
    "5-d": ({}, np.zeros((4, 1, 2, 2, 2)), ValueError, r"5 dimensions .*X.reshape"),
    "strings": ({}, np.array([["a", "b"]] * 5), TypeError, r"numeric samples, got dtype <U1"),
    "objects": (
        {},
        np.array([["a", 1.0]] * 5, dtype=object),
        ValueError,
        r"not numbers \(could not convert string to float: 'a'\); convert",
    ),
    "complex": ({}, ROWS + 1j, ValueError, r"Complex data not supported.*X.real"),
    "sparse images for the CNN": (
        {"network": "cnn", "image_shape": (2, 2)},
        scipy.sparse.csr_matrix(ROWS),
        TypeError,
        r"network='cnn' needs dense samples; sparse rows work with the row networks",
    ),
    "cnn on 4x4 images": (
        {"network": "cnn"},
        SMALL_IMAGES,
        ValueError,
        r"network='cnn' needs images of at least 8x8 pixels, got 4x4; use network='mlp'",
    ),
    "cnn on rows": ({"network": "cnn"}, ROWS, ValueError, r"needs images.*image_shape=\(h, w\)"),
    "image_shape product": (
        {"image_shape": (3, 3)},
        ROWS,
        ValueError,
        r"image_shape=\(3, 3\) does not fit rows of 4 features",
    ),
    "image_shape negative": ({"image_shape": (2, -2)}, ROWS, ValueError, r"positive integers"),
    "image_shape string": (
        {"image_shape": "2x2"},
        ROWS,
        TypeError,
        r"image_shape' .*tuple.* Got '2x2'",
    ),
    "image_shape contradicts images": (
        {"image_shape": (2, 8)},
        SMALL_IMAGES,
        ValueError,
        r"contradicts the images' shape \(4, 4\)",
    ),
    "network typo": ({"network": "mpl"}, ROWS, ValueError, r"network' .*Got 'mpl' .*network='mlp'"),
    "init typo": ({"init": "kmeans++"}, ROWS, ValueError, r"Did you mean init='k-means\+\+'"),
    "init too few centroids": (
        {"init": np.zeros((2, 4))},
        ROWS,
        ValueError,
        r"initial centers \(2, 4\) does not match the number of clusters 3",
    ),
    "init wrong features": (
        {"init": np.zeros((3, 5))},
        ROWS,
        ValueError,
        r"initial centers \(3, 5\) does not match the number of features of the data 4",
    ),
    "init with NaN": ({"init": np.full((3, 4), np.nan)}, ROWS, ValueError, r"finite centroids"),
    "init scalar": (
        {"init": 5},
        ROWS,
        TypeError,
        r"init' parameter .*'random'.* array-like or a callable. Got 5",
    ),
    "optimizer": ({"optimizer": "adamw"}, ROWS, ValueError, r"optimizer' .*'sgd'.*Got 'adamw'"),
    "device": ({"device": "tpu"}, ROWS, ValueError, r"unknown device 'tpu'.*'cpu'"),
    "device type": ({"device": 3}, ROWS, TypeError, r"device' parameter .*'str'.*Got 3"),
    "batch_size": ({"batch_size": 0}, ROWS, ValueError, r"batch_size' .*Got 0 .*batch_size=256"),
    "steps_per_iter": ({"steps_per_iter": -1}, ROWS, ValueError, r"steps_per_iter=10"),
    "max_iter float": (
        {"max_iter": 1.5},
        ROWS,
        TypeError,
        r"max_iter' .*int in the range .*Got 1.5",
    ),
    "tol negative": ({"tol": -1}, ROWS, ValueError, r"tol' .*range \[0.0, inf\). Got -1"),
    "tol NaN": ({"tol": float("nan")}, ROWS, ValueError, r"tol' .*Got nan"),
    "learning_rate negative": ({"learning_rate": -1}, ROWS, ValueError, r"learning_rate' .*Got -1"),
    "learning_rate infinite": ({"learning_rate": math.inf}, ROWS, ValueError, r"Got inf"),
    "learning_rate string": ({"learning_rate": "fast"}, ROWS, TypeError, r"learning_rate=0.001"),
    "random_state string": ({"random_state": "seed"}, ROWS, TypeError, r"random_state=0"),
    "random_state negative": ({"random_state": -1}, ROWS, ValueError, r"random_state' .*Got -1"),
    "callbacks item": ({"callbacks": [print, 3]}, ROWS, TypeError, r"got 3 in the list"),
    "callbacks string": (
        {"callbacks": "print"},
        ROWS,
        TypeError,
        r"callbacks' .*callable.*Got 'print'",
    ),
    "verbose": ({"verbose": -1}, ROWS, ValueError, r"verbose' .*Got -1"),
    "record_centroids": (
        {"record_centroids": "yes"},
        ROWS,
        TypeError,
        r"record_centroids' .*bool.*Got 'yes'",
    ),
    "checkpoint_dir": (
        {"checkpoint_dir": 5},
        ROWS,
        TypeError,
        r"checkpoint_dir' .*PathLike.*Got 5",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FITS))
def test_bad_fit_input_is_a_clear_error_before_any_work(case, no_work):
    params, X, error, message = BAD_FITS[case]
    model = NeuralKMeans(**{"n_clusters": 3, **params})
    with pytest.raises(error, match=message):
        model.fit(X)


def test_parameter_errors_are_both_value_and_type_errors():
    with pytest.raises(InvalidParameterError) as info:
        NeuralKMeans(0).fit(ROWS)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_cuda_requested_without_cuda(no_work):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"CUDA is not available.*device='cpu'"):
        NeuralKMeans(3, device="cuda").fit(ROWS)


def test_resume_without_checkpoint_dir(no_work):
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        NeuralKMeans(3).fit(ROWS, resume=True)


@pytest.fixture(scope="module")
def fitted_rows():
    return NeuralKMeans(3, network="mlp", max_iter=2, random_state=0).fit(ROWS)


@pytest.fixture(scope="module")
def fitted_images():
    images = load_digits().images[:200].astype(np.float32) / 16
    return NeuralKMeans(3, network="mlp", max_iter=2, random_state=0).fit(images)


@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_predict_with_another_feature_count(fitted_rows, method):
    with pytest.raises(ValueError, match="X has 3 features, but NeuralKMeans is expecting 4"):
        getattr(fitted_rows, method)(ROWS[:, :3])


@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_predict_with_nan(fitted_rows, method):
    with pytest.raises(ValueError, match=r"NaN .*index \(1, 0\)"):
        getattr(fitted_rows, method)(with_value(ROWS[:4], (1, 0), np.nan))


def test_predict_with_images_of_another_shape(fitted_images):
    with pytest.raises(ValueError, match=r"images of shape \(4, 16\), but .*\(1, 8, 8\)"):
        fitted_images.predict(np.zeros((2, 4, 16)))


def test_predict_before_fit():
    with pytest.raises(ValueError, match="not fitted yet"):
        NeuralKMeans(3).predict(ROWS)


@pytest.mark.parametrize("size", range(1, 11))
def test_cnn_size_check_agrees_with_the_network(size):
    try:
        cnn((1, size, size + 1), 3)
        builds = True
    except ValueError:
        builds = False
    assert builds == (size >= CNN_MIN_SIZE)
    model = NeuralKMeans(3, network="cnn")
    if builds:
        check_data_for_params(model, (size, size + 1), 12, (1, size, size + 1), "cnn")
    else:
        with pytest.raises(ValueError, match=f"at least 8x8 pixels, got {size}x{size + 1}"):
            model.fit(np.random.default_rng(size).random((12, size, size + 1)))


def test_torch_bfloat16_and_bool_input_are_accepted():
    X = torch.from_numpy(ROWS).to(torch.bfloat16)
    labels = NeuralKMeans(3, network="mlp", max_iter=1, random_state=0).fit_predict(X)
    assert labels.shape == (30,)
    flags = ROWS > 0
    assert NeuralKMeans(2, network="mlp", max_iter=1, random_state=0).fit(flags).n_iter_ == 1


# ------------------------------------------------------------------- property-based
@FAST
@given(
    shape=hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6),
    dtype=st.sampled_from([np.float32, np.float64]),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
    data=st.data(),
)
def test_a_non_finite_value_anywhere_is_named_with_its_place(shape, dtype, value, data):
    X = np.random.default_rng(0).random(shape).astype(dtype)
    index = tuple(data.draw(st.integers(0, side - 1)) for side in shape)
    X[index] = value
    kind = "NaN" if np.isnan(value) else "infinity"
    with pytest.raises(ValueError, match=rf"{kind} \(the first non-finite value is at index"):
        NeuralKMeans(1, network="mlp").fit(X)
    with pytest.raises(ValueError) as info:
        check_finite(X)
    assert f"at index {index}" in str(info.value)


@FAST
@given(
    st.one_of(
        st.integers(max_value=0),
        st.floats(allow_nan=True).filter(lambda v: not float(v).is_integer()),
        st.floats(min_value=1, max_value=100).map(float),  # 3.0 is no integer either
        st.text(max_size=5),
        st.booleans(),
        st.none(),
        st.lists(st.integers(1, 5), max_size=2),
    )
)
def test_any_invalid_n_clusters_is_rejected(k):
    with pytest.raises(InvalidParameterError, match="n_clusters"):
        NeuralKMeans(k).fit(ROWS)


@FAST
@given(
    shape=st.one_of(
        hnp.array_shapes(min_dims=1, max_dims=1, min_side=1, max_side=8),
        hnp.array_shapes(min_dims=5, max_dims=6, min_side=1, max_side=3),
    )
)
def test_wrong_number_of_dimensions_is_rejected(shape):
    with pytest.raises(ValueError, match=r"Reshape your data|dimensions"):
        NeuralKMeans(1).fit(np.ones(shape))


@FAST
@given(n=st.integers(1, 20), extra=st.integers(1, 20))
def test_fewer_samples_than_clusters_is_rejected(n, extra):
    with pytest.raises(ValueError, match=rf"n_samples={n} should be >= n_clusters={n + extra}"):
        NeuralKMeans(n + extra, network="mlp").fit(np.ones((n, 3)))


@FAST
@given(
    name=st.sampled_from(["batch_size", "max_iter", "steps_per_iter"]),
    value=st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.text(max_size=3)),
)
def test_invalid_counts_are_rejected(name, value):
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter .* int in the range"):
        NeuralKMeans(2, **{name: value}).fit(ROWS)


@FAST
@given(
    tol=st.one_of(st.floats().filter(lambda v: not 0 <= v < math.inf), st.text(max_size=3)),
    rate=st.one_of(
        st.floats(max_value=0), st.just(math.inf), st.just(math.nan), st.floats(min_value=1e39)
    ),
)
def test_invalid_tol_and_learning_rate_are_rejected(tol, rate):
    with pytest.raises(InvalidParameterError, match=r"'tol' parameter .* range \[0.0, inf\)"):
        NeuralKMeans(2, tol=tol).fit(ROWS)
    with pytest.raises(InvalidParameterError, match=r"'learning_rate' parameter .* or None"):
        NeuralKMeans(2, learning_rate=rate).fit(ROWS)


@FAST
@given(
    sample_shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
    n=st.integers(3, 8),
)
def test_valid_shapes_pass_validation_and_give_one_label_per_sample(sample_shape, n):
    X = np.random.default_rng(n).random((n, *sample_shape))
    model = NeuralKMeans(2, network="linear", max_iter=1, steps_per_iter=1, random_state=0)
    assert model.fit(X).labels_.shape == (n,)
    assert model.n_features_in_ == math.prod(sample_shape)


# ------------------------------------------------------------------- numerical faults
@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(300, centers=3, random_state=0)
    return X.astype(np.float32)


@pytest.mark.parametrize(
    ("network", "optimizer", "rate"), [("mlp", "sgd", 1e30), ("mlp", "adam", 1e30)]
)
def test_a_huge_learning_rate_is_reported_with_its_iteration(blobs, network, optimizer, rate):
    model = NeuralKMeans(3, network=network, optimizer=optimizer, learning_rate=rate)
    with pytest.raises(DivergenceError, match=r"iteration 1: the training loss is nan") as info:
        model.fit(blobs)
    assert info.value.iteration == 1
    assert not hasattr(model, "labels_") and not hasattr(model, "cluster_centers_")


def test_a_finite_but_exploding_loss_is_divergence():
    images = load_digits().images[:100].astype(np.float32) / 16
    model = NeuralKMeans(5, network="cnn", learning_rate=1e10, random_state=0)
    with pytest.raises(DivergenceError, match=r"iteration 1: the training loss is .*above 1e\+06"):
        model.fit(images)


def test_nan_outputs_are_caught_before_they_reach_the_centroids(blobs, poisonable):
    def poison_after_two(state):
        state.network.poisoned = state.iteration == 2
        seen.append(state.record["inertia"])

    seen = []
    model = NeuralKMeans(3, network=poisonable, max_iter=10, callbacks=poison_after_two)
    with pytest.raises(DivergenceError, match=r"iteration 3: the network's outputs hold NaN"):
        model.fit(blobs)
    assert len(seen) == 2 and all(np.isfinite(seen))
    assert not hasattr(model, "cluster_centers_")


def test_nan_weights_from_a_factory_are_caught(blobs):
    def nan_factory(input_shape, n_clusters):
        layer = torch.nn.Linear(math.prod(input_shape), n_clusters)
        torch.nn.init.constant_(layer.bias, math.nan)
        return torch.nn.Sequential(torch.nn.Flatten(), layer)

    with pytest.raises(DivergenceError, match="iteration 1"):
        NeuralKMeans(3, network=nan_factory, max_iter=3).fit(blobs)


def test_values_that_overflow_float32_are_reported(blobs):
    """Before any work: squared distances of such values overflow float32 (k-means++ and
    the inertia would meet infinities, not the user's data)."""
    with pytest.raises(ValueError, match=r"up to .*e\+25 .*overflow float32.*rescale"):
        NeuralKMeans(3, network="mlp", init="random", random_state=0).fit(blobs * 1e25)
    NeuralKMeans(3, network="mlp", init="random", random_state=0, max_iter=2).fit(blobs * 1e17)
