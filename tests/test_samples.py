"""How the loop reads the samples: the float copy kept for in-memory data, memory-mapped
data never copied whole, the squared norm measured once, the inertia fused into the
final pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neural_kmeans import NeuralKMeans
from neural_kmeans.core import initialization
from neural_kmeans.core.assignment import assign_and_accumulate
from neural_kmeans.core.centroids import inertia
from neural_kmeans.core.networks import NearestCentroidNetwork
from neural_kmeans.core.samples import SampleBatches
from neural_kmeans.core.validation import to_numpy_samples

CPU = torch.device("cpu")


def _uint8_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 6), dtype=np.uint8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_copy_gives_the_batches_bit_for_bit(dtype):
    X = _uint8_images(300)
    plain = SampleBatches(X, (36,), dtype, CPU)
    copied = SampleBatches(X, (36,), dtype, CPU)
    assert copied.keep_float_copy()
    assert torch.equal(plain.flat_batch(17, 250), copied.flat_batch(17, 250))
    index = np.array([5, 299, 0, 5, 123])
    assert torch.equal(plain.rows(index), copied.rows(index))
    numpy_type = np.float32 if dtype == torch.float32 else np.float64
    for rows in (slice(None), index):
        assert np.array_equal(
            plain.array_rows(rows, numpy_type), copied.array_rows(rows, numpy_type)
        )
    # array_rows is a copy: k-means++ centres it in place
    copied.array_rows(slice(None), numpy_type)[:] = 7
    assert torch.equal(plain.flat_batch(0, 300), copied.flat_batch(0, 300))


def test_no_float_copy_where_the_batches_are_views_already_or_over_the_limit():
    rows = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    assert not SampleBatches(rows, (4,), torch.float32, CPU).keep_float_copy()
    assert not SampleBatches(_uint8_images(50), (36,), torch.float32, CPU).keep_float_copy(
        max_bytes=50 * 36 * 4 - 1
    )


def test_wide_samples_come_in_batches_of_at_most_max_batch_values(monkeypatch):
    """Large images read 8,192 at a time held gigabytes: a batch is capped in values."""
    import neural_kmeans.core.samples as samples_module

    monkeypatch.setattr(samples_module, "MAX_BATCH_VALUES", 36 * 7 + 5)
    batches = SampleBatches(_uint8_images(30), (36,), torch.float32, CPU)
    sizes = [rows.shape[0] for _, rows in batches(8192)]
    assert sizes == [7, 7, 7, 7, 2]
    assert [rows.shape[0] for _, rows in batches(4)] == [4] * 7 + [2]
    whole = torch.cat([rows for _, rows in batches(8192)])
    assert torch.equal(whole, batches.flat_batch(0, 30))


def test_memory_mapped_data_stays_mapped_after_validation(tmp_path):
    # Regression: validation (check_array) hands on a plain ndarray view of the map, so
    # isinstance(X, np.memmap) was False: k-means++ then converted the whole file to
    # floats instead of seeding from a subset, and a float copy would have been kept.
    path = tmp_path / "x.npy"
    np.save(path, _uint8_images(40))
    data = to_numpy_samples(np.load(path, mmap_mode="r"))
    assert not isinstance(data, np.memmap)
    samples = SampleBatches(data, (36,), torch.float32, CPU)
    assert samples.memory_mapped
    assert not samples.keep_float_copy()
    assert not SampleBatches(np.array(data), (36,), torch.float32, CPU).memory_mapped


def test_kmeans_plusplus_on_memory_mapped_data_reads_a_subset(tmp_path, monkeypatch):
    limit = 500
    monkeypatch.setattr(initialization, "KMEANS_PLUSPLUS_MAX_SAMPLES", limit)
    path = tmp_path / "x.npy"
    np.save(path, _uint8_images(2_000).reshape(2_000, -1))
    read = []
    original = SampleBatches.array_rows

    def spy(self, indices, dtype):
        rows = original(self, indices, dtype)
        read.append(rows.shape[0])
        return rows

    monkeypatch.setattr(SampleBatches, "array_rows", spy)
    X = np.load(path, mmap_mode="r")
    NeuralKMeans(4, network="linear", n_init=1, max_iter=2, random_state=0).fit(X)
    assert read and max(read) <= limit


@pytest.mark.parametrize("weighted", [False, True])
def test_squared_norm_is_measured_once_and_matches_numpy(weighted):
    X = np.random.default_rng(1).normal(size=(1_000, 30))
    weights = np.random.default_rng(2).uniform(0, 3, 1_000) if weighted else None
    samples = SampleBatches(X, (30,), torch.float64, CPU, weights)
    expected = ((X**2).sum(axis=1) * (1 if weights is None else weights)).sum()
    terms = X.size
    tolerance = 4 * terms * np.finfo(np.float64).eps * expected
    assert abs(float(samples.squared_norm()) - expected) <= tolerance
    assert samples.squared_norm() is samples.squared_norm()
    part = ((X[100:400] ** 2).sum(axis=1) * (1 if weights is None else weights[100:400])).sum()
    assert abs(float(samples.squared_norm(100, 400)) - part) <= tolerance


@pytest.mark.parametrize("weighted", [False, True])
def test_squared_norm_of_sparse_rows_reads_the_stored_values(weighted):
    import scipy.sparse

    # 2,000,000 features: dense batches of NORM_BATCH_VALUES would be one row each
    rng = np.random.default_rng(5)
    rows, columns = rng.integers(0, 60, 1_200), rng.integers(0, 2_000_000, 1_200)
    X = scipy.sparse.csr_array((rng.normal(size=1_200), (rows, columns)), shape=(60, 2_000_000))
    weights = np.random.default_rng(6).uniform(0, 2, 60) if weighted else None
    samples = SampleBatches(X, (2_000_000,), torch.float64, CPU, weights)
    rows = np.asarray(X.multiply(X).sum(axis=1)).ravel() * (1 if weights is None else weights)
    tolerance = 4 * X.nnz * np.finfo(np.float64).eps * rows.sum()
    assert abs(float(samples.squared_norm()) - rows.sum()) <= tolerance
    assert abs(float(samples.squared_norm(10, 40)) - rows[10:40].sum()) <= tolerance


@pytest.mark.parametrize("weighted", [False, True])
def test_inertia_fused_into_the_pass_equals_a_separate_pass(weighted):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(700, 5))
    weights = rng.uniform(0, 2, 700) if weighted else None
    samples = SampleBatches(X, (5,), torch.float64, CPU, weights)
    centroids = torch.as_tensor(X[:4].copy())
    network = NearestCentroidNetwork((5,), 4).double()
    network.set_centroids(centroids)
    moved = centroids + 0.25  # the inertia against other centroids than the network's
    fused = assign_and_accumulate(network, samples, 4, batch_size=64, centroids=moved)
    separate = inertia(samples, fused.labels, moved, batch_size=500)
    tolerance = 4 * X.size * np.finfo(np.float64).eps * separate
    assert fused.inertia is not None and abs(fused.inertia - separate) <= tolerance
    assert assign_and_accumulate(network, samples, 4, batch_size=64).inertia is None


def test_fitted_inertia_is_the_inertia_of_the_final_labels_and_centres():
    X = np.random.default_rng(4).normal(size=(400, 3)).astype(np.float32)
    for network in ("nearest-centroid", "mlp"):
        model = NeuralKMeans(5, network=network, max_iter=3, tol=0, random_state=0).fit(X)
        centres = model.cluster_centers_.astype(np.float64)
        direct = ((X.astype(np.float64) - centres[model.labels_]) ** 2).sum()
        tolerance = 8 * X.size * np.finfo(np.float32).eps * direct
        assert abs(model.inertia_ - direct) <= tolerance, network


def _two_networks(n_features: int, dtype: torch.dtype) -> tuple[torch.nn.Module, ...]:
    """Two nearest-centroid networks whose clusters differ on part of the samples."""
    generator = torch.Generator().manual_seed(0)
    first = torch.rand(6, n_features, generator=generator, dtype=torch.float64)
    networks = []
    for centroids in (first, first + 0.05 * torch.rand(first.shape, generator=generator)):
        network = NearestCentroidNetwork((n_features,), 6).to(dtype)
        network.set_centroids(centroids.to(dtype))
        networks.append(network)
    return tuple(networks)


def test_sums_updated_from_the_changed_samples_equal_a_full_pass_bit_for_bit():
    # 8-bit pixels scaled to [0, 1] are float32 values that float64 sums hold exactly,
    # in any order: moving only the changed samples gives the very same sums.
    X = _uint8_images(3000).reshape(3000, -1)
    samples = SampleBatches(X, (36,), torch.float32, CPU)
    before, after = _two_networks(36, torch.float32)
    previous = assign_and_accumulate(before, samples, 6, batch_size=256)
    full = assign_and_accumulate(after, samples, 6, batch_size=256)
    updated = assign_and_accumulate(after, samples, 6, batch_size=256, previous=previous)
    changed = float((full.labels != previous.labels).double().mean())
    assert 0.01 < changed < 0.9  # the update has something to move, and leaves some
    assert torch.equal(updated.labels, full.labels)
    assert torch.equal(updated.counts, full.counts)
    assert torch.equal(updated.sums, full.sums)
    assert torch.equal(previous.sums, assign_and_accumulate(before, samples, 6, 256).sums)


@pytest.mark.parametrize("weighted", [False, True])
def test_sums_updated_from_the_changed_samples_match_a_full_pass_on_any_floats(weighted):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2000, 7)) * np.exp(rng.normal(size=(2000, 1)))
    weights = rng.uniform(0, 3, size=2000) if weighted else None
    samples = SampleBatches(X, (7,), torch.float64, CPU, weights)
    before, after = _two_networks(7, torch.float64)
    previous = assign_and_accumulate(before, samples, 6, batch_size=300)
    full = assign_and_accumulate(after, samples, 6, batch_size=300)
    updated = assign_and_accumulate(after, samples, 6, batch_size=300, previous=previous)
    assert torch.equal(updated.labels, full.labels)
    assert torch.equal(updated.counts, full.counts)
    # Each sum gathers at most 3 x 2000 float64 roundings of terms up to max |w x|.
    scale = float(np.abs(X * (1 if weights is None else weights[:, None])).max())
    tolerance = 3 * len(X) * np.finfo(np.float64).eps * scale
    assert float((updated.sums - full.sums).abs().max()) <= tolerance
    if weighted:
        assert (
            float((updated.weights - full.weights).abs().max())
            <= 3 * len(X) * np.finfo(np.float64).eps * 3
        )
    else:
        assert torch.equal(updated.weights, full.weights)


def test_previous_pass_of_other_samples_is_refused():
    samples = SampleBatches(_uint8_images(100).reshape(100, -1), (36,), torch.float32, CPU)
    network, _ = _two_networks(36, torch.float32)
    previous = assign_and_accumulate(network, samples, 6, 64, stop=50)
    with pytest.raises(ValueError, match="another number of samples"):
        assign_and_accumulate(network, samples, 6, 64, previous=previous)
