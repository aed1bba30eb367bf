"""Saved models: predictions survive the round trip; damaged or foreign files are clear errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits, make_blobs

from neural_kmeans import NeuralKMeans
from neural_kmeans.io import container
from neural_kmeans.io.checkpoint import CheckpointError, read_checkpoint
from neural_kmeans.io.container import read_container, write_container
from neural_kmeans.io.model_file import (
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    ModelFileError,
    read_model,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits().images[:300].astype(np.float32) / 16


@pytest.fixture(scope="module")
def small_model():
    """A tiny fitted model whose file is small enough to damage byte by byte."""
    X, _ = make_blobs(24, centers=2, n_features=2, random_state=0)
    return NeuralKMeans(2, network="linear", max_iter=2, random_state=0).fit(X), X


@pytest.fixture(scope="module")
def small_file(small_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "small.nkm"
    small_model[0].save(path)
    return path


def assert_same_model(loaded, model, X):
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    np.testing.assert_array_equal(loaded.cluster_centers_, model.cluster_centers_)
    np.testing.assert_array_equal(loaded.initial_centers_, model.initial_centers_)
    assert (loaded.inertia_, loaded.n_iter_, loaded.converged_) == (
        model.inertia_,
        model.n_iter_,
        model.converged_,
    )
    assert loaded.n_features_in_ == model.n_features_in_
    assert loaded.image_shape_ == model.image_shape_
    assert [{k: v for k, v in r.items() if k != "centroids"} for r in loaded.history_] == [
        {k: v for k, v in r.items() if k != "centroids"} for r in model.history_
    ]


@pytest.mark.parametrize("network", ["cnn", "mlp", "nearest-centroid", "linear"])
def test_save_load_predict_equality(network, digits, tmp_path):
    model = NeuralKMeans(10, network=network, max_iter=3, random_state=0).fit(digits)
    model.save(tmp_path / "model.nkm")
    loaded = NeuralKMeans.load(tmp_path / "model.nkm")
    assert_same_model(loaded, model, digits)
    assert loaded.get_params() == model.get_params()
    assert not loaded.network_.training


def test_uint8_rows_with_init_array_and_recorded_centroids(digits, tmp_path):
    X = np.round(digits.reshape(len(digits), -1) * 255).astype(np.uint8)
    init = X[:5].astype(float)
    model = NeuralKMeans(
        5, network="mlp", init=init, max_iter=3, random_state=0, record_centroids=True
    ).fit(X)
    model.save(tmp_path / "model.nkm")
    loaded = NeuralKMeans.load(tmp_path / "model.nkm")
    assert_same_model(loaded, model, X)
    np.testing.assert_array_equal(loaded.init, init)
    for mine, theirs in zip(loaded.history_, model.history_, strict=True):
        np.testing.assert_array_equal(mine["centroids"], theirs["centroids"])


def custom_factory(input_shape, n_clusters):
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(math.prod(input_shape), n_clusters)
    )


def test_custom_network_needs_its_factory_again(digits, tmp_path):
    model = NeuralKMeans(10, network=custom_factory, max_iter=2, random_state=0).fit(digits)
    model.save(tmp_path / "model.nkm")
    with pytest.raises(ModelFileError, match=r"custom network factory .*custom_factory.*network="):
        NeuralKMeans.load(tmp_path / "model.nkm")
    loaded = NeuralKMeans.load(tmp_path / "model.nkm", network=custom_factory)
    assert loaded.network is custom_factory
    assert_same_model(loaded, model, digits)

    def other_factory(input_shape, n_clusters):
        return torch.nn.Linear(math.prod(input_shape), n_clusters)

    with pytest.raises(ModelFileError, match="cannot be built: the network factory's module"):
        NeuralKMeans.load(tmp_path / "model.nkm", network=other_factory)


def test_loading_leaves_the_global_random_state_alone(small_file):
    state = torch.get_rng_state()
    NeuralKMeans.load(small_file, device="cpu")
    assert torch.equal(torch.get_rng_state(), state)


def test_saving_an_unfitted_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not fitted yet"):
        NeuralKMeans(3).save(tmp_path / "model.nkm")
    assert not (tmp_path / "model.nkm").exists()


def test_save_is_atomic_and_leaves_no_temporary_file(small_model, tmp_path, monkeypatch):
    model, _ = small_model
    path = tmp_path / "model.nkm"
    model.save(path)
    before = path.read_bytes()

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(container.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.nkm"]


# ------------------------------------------------------------ damaged and foreign files
def test_every_flipped_byte_is_a_clear_error(small_file, tmp_path):
    data = small_file.read_bytes()
    damaged = tmp_path / "damaged.nkm"
    for position in range(len(data)):
        changed = bytearray(data)
        changed[position] ^= 0xFF
        damaged.write_bytes(bytes(changed))
        with pytest.raises(ModelFileError, match=r"damaged|not a neural-kmeans|format version"):
            read_model(damaged)
    damaged.write_bytes(data)
    assert NeuralKMeans.load(damaged).n_iter_ == 2  # the intact bytes load


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fraction=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_any_change_of_one_byte_in_a_file_is_a_clear_error(
    small_file, tmp_path_factory, fraction, mask
):
    data = bytearray(small_file.read_bytes())
    data[int(fraction * len(data))] ^= mask
    damaged = tmp_path_factory.mktemp("damaged") / "model.nkm"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"model\.nkm"):
        NeuralKMeans.load(damaged)


def test_regression_a_padding_space_made_a_line_break_is_damage(tmp_path):
    """Found by the test above: safetensors pads its header with spaces, and one of them
    changed into a tab or line break parsed as the same header (JSON's whitespace), so
    the file loaded though a byte had changed."""
    X, _ = make_blobs(24, centers=2, n_features=2, random_state=0)
    for seed in range(20):  # a header whose length leaves padding (7 in 8 do)
        path = tmp_path / f"model{seed}.nkm"
        NeuralKMeans(2, network="linear", max_iter=1, random_state=seed).fit(X).save(path)
        data = bytearray(path.read_bytes())
        end = 8 + int.from_bytes(data[:8], "little")
        if data[end - 1] == ord(" "):
            break
    assert data[end - 1] == ord(" ")
    NeuralKMeans.load(path)  # intact
    for whitespace in b"\t\n\r":
        data[end - 1] = whitespace
        path.write_bytes(bytes(data))
        with pytest.raises(ModelFileError, match="damaged: its header holds a tab or line"):
            NeuralKMeans.load(path)


def test_a_changed_tensor_value_fails_the_digest(small_file, tmp_path):
    data = bytearray(small_file.read_bytes())
    data[-1] ^= 0x01  # the last byte of the last tensor
    (tmp_path / "model.nkm").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256 digest does not match"):
        NeuralKMeans.load(tmp_path / "model.nkm")


@pytest.mark.parametrize("length", [0, 5, 100, -1])
def test_a_truncated_file_is_a_clear_error(small_file, tmp_path, length):
    data = small_file.read_bytes()
    (tmp_path / "cut.nkm").write_bytes(data[:length])
    with pytest.raises(ModelFileError, match=r"not a neural-kmeans model|damaged|truncated"):
        NeuralKMeans.load(tmp_path / "cut.nkm")


def test_a_file_from_another_format_version_is_a_clear_error(small_file, tmp_path):
    header, tensors = read_container(small_file, MODEL_FORMAT, MODEL_FORMAT_VERSION, ModelFileError)
    for key in ("format", "format_version", "package_version", "torch_version", "written"):
        header.pop(key)
    future = tmp_path / "future.nkm"
    write_container(future, MODEL_FORMAT, MODEL_FORMAT_VERSION + 1, header, tensors)
    with pytest.raises(ModelFileError, match=r"format version 3 .*reads format version 2") as info:
        NeuralKMeans.load(future)
    assert "damaged" not in str(info.value)  # an intact file of another version


def test_other_files_are_clear_errors(small_file, tmp_path):
    pickled = tmp_path / "pickled.nkm"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelFileError, match="not a neural-kmeans model"):
        NeuralKMeans.load(pickled)
    plain = tmp_path / "plain.safetensors"
    import safetensors.torch

    safetensors.torch.save_file({"x": torch.zeros(3)}, plain)
    with pytest.raises(ModelFileError, match="not a neural-kmeans model"):
        NeuralKMeans.load(plain)
    with pytest.raises(FileNotFoundError):
        NeuralKMeans.load(tmp_path / "missing.nkm")
    with pytest.raises(CheckpointError, match="is a 'neural-kmeans-model' file, not"):
        (tmp_path / "checkpoint.safetensors").write_bytes(small_file.read_bytes())
        read_checkpoint(tmp_path)


def test_loading_never_unpickles(small_file, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model file must never be unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = NeuralKMeans.load(small_file)
    assert loaded.labels_.shape == (24,)
    # The file is safetensors: an 8-byte header length, then JSON, then raw numbers.
    data = small_file.read_bytes()
    size = int.from_bytes(data[:8], "little")
    assert data[8:9] == b"{" and b"\x80\x04\x95" not in data[: 8 + size]


def test_load_on_another_device_parameter(small_file):
    loaded = NeuralKMeans.load(small_file, device="cpu")
    assert loaded.device == "cpu" and loaded.device_ == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"CUDA is not available.*device='cpu'"):
            NeuralKMeans.load(small_file, device="cuda")
