"""Tests of neural_kmeans.io.datasets: named data sets, user files and their errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neural_kmeans.io import download
from neural_kmeans.io.datasets import (
    DATASET_NAMES,
    Dataset,
    DatasetNotFoundError,
    has_split,
    load_dataset,
    parse_idx,
)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(autouse=True)
def _no_system_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep Debian's Fashion-MNIST folder out of these tests, whatever the machine has."""
    monkeypatch.setattr(download, "SYSTEM_DATA_DIRS", {})


@pytest.fixture(scope="module")
def mnist_train(shared_data: Path) -> Dataset:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEURAL_KMEANS_DATA", str(shared_data))
        return load_dataset("mnist", "train")


# --------------------------------------------------------------------------- named sets


def test_digits_is_embedded() -> None:
    ds = load_dataset("digits")
    assert ds.data.shape == (1797, 8, 8)
    assert ds.data.dtype == np.float32
    assert ds.data.min() == 0.0 and ds.data.max() == 1.0
    assert ds.target.dtype == np.int64 and ds.target.shape == (1797,)
    assert set(np.unique(ds.target)) == set(range(10))
    assert ds.image_shape == (8, 8)
    assert (ds.name, ds.split) == ("digits", "all")
    X, y = ds
    assert X is ds.data and y is ds.target


@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_sets_without_split_give_everything(split: str) -> None:
    ds = load_dataset("digits", split)
    assert ds.data.shape[0] == 1797 and ds.split == "all"
    assert load_dataset("moons", split).data.shape[0] == 1500


def test_names_and_has_split() -> None:
    assert DATASET_NAMES == ("digits", "mnist", "fashion-mnist", "blobs", "moons", "circles")
    assert has_split("mnist") and has_split("fashion-mnist") and has_split("Fashion_MNIST")
    assert not any(has_split(n) for n in ("digits", "blobs", "moons", "circles", "x.npy"))
    assert not has_split(Path("mnist"))


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown data set 'mnsit'") as info:
        load_dataset("mnsit")
    message = str(info.value)
    assert "Did you mean 'mnist'?" in message
    assert "digits, mnist, fashion-mnist, blobs, moons, circles" in message


@pytest.mark.parametrize("name", ["digits", "mnist", "blobs", "some.npy"])
def test_bad_split(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown split 'val'; expected one of: train, test, all"):
        load_dataset(name, "val")


@pytest.mark.parametrize("name", ["blobs", "moons", "circles"])
def test_toy_sets_are_seeded(name: str) -> None:
    ds = load_dataset(name)
    assert ds.data.shape == (1500, 2) and ds.data.dtype == np.float32
    assert ds.target.shape == (1500,) and ds.target.dtype == np.int64
    assert ds.image_shape is None and ds.split == "all" and ds.name == name
    np.testing.assert_array_equal(load_dataset(name).data, ds.data)
    assert not np.array_equal(load_dataset(name, random_state=1).data, ds.data)
    small = load_dataset(name, n_samples=101, random_state=3)
    assert small.data.shape == (101, 2) and small.target.shape == (101,)


def test_toy_options() -> None:
    assert np.unique(load_dataset("blobs").target).tolist() == [0, 1, 2]
    assert np.unique(load_dataset("blobs", centers=5).target).tolist() == [0, 1, 2, 3, 4]
    assert np.unique(load_dataset("moons").target).tolist() == [0, 1]
    quiet = load_dataset("circles", noise=0.0).data
    radii = np.sort(np.unique(np.round(np.hypot(quiet[:, 0], quiet[:, 1]), 4)))
    np.testing.assert_allclose(radii, [0.5, 1.0])
    with pytest.raises(ValueError, match="n_samples must be at least 1"):
        load_dataset("moons", n_samples=0)


# --------------------------------------------------------------------------- MNIST-like


def test_mnist_train(mnist_train: Dataset) -> None:
    ds = mnist_train
    assert ds.data.shape == (60000, 28, 28) and ds.data.dtype == np.uint8
    assert ds.target.shape == (60000,) and ds.target.dtype == np.int64
    assert ds.image_shape == (28, 28) and (ds.name, ds.split) == ("mnist", "train")
    assert np.bincount(ds.target).tolist() == MNIST_TRAIN_COUNTS
    assert ds.data.mean() / 255 == pytest.approx(0.1307, abs=5e-4)
    assert ds.data.std() / 255 == pytest.approx(0.3081, abs=5e-4)


def test_mnist_test_and_all_splits(mnist_train: Dataset, shared_data_env: Path) -> None:
    test = load_dataset("MNIST", "test")
    assert test.data.shape == (10000, 28, 28) and test.data.dtype == np.uint8
    assert test.target.shape == (10000,) and np.bincount(test.target).sum() == 10000
    assert test.split == "test" and test.name == "mnist"
    everything = load_dataset("mnist", "all")
    assert everything.data.shape == (70000, 28, 28) and everything.target.shape == (70000,)
    assert everything.split == "all" and everything.data.dtype == np.uint8
    np.testing.assert_array_equal(everything.data[:60000], mnist_train.data)
    np.testing.assert_array_equal(everything.data[60000:], test.data)
    np.testing.assert_array_equal(everything.target[60000:], test.target)


def test_fashion_mnist(shared_data_env: Path) -> None:
    test = load_dataset("fashion-mnist", "test")
    assert test.data.shape == (10000, 28, 28) and test.data.dtype == np.uint8
    assert test.image_shape == (28, 28) and test.name == "fashion-mnist"
    assert np.bincount(test.target).tolist() == [1000] * 10
    train = load_dataset("fashion_mnist", "train")
    assert train.data.shape == (60000, 28, 28)
    assert np.bincount(train.target).tolist() == [6000] * 10
    assert train.data.mean() / 255 == pytest.approx(0.2860, abs=5e-4)


@pytest.mark.parametrize("sub", [".", "mnist"])
def test_data_dir_argument(shared_data: Path, sub: str) -> None:
    ds = load_dataset("mnist", "test", data_dir=shared_data / sub, download=False)
    assert ds.data.shape == (10000, 28, 28)


def _copy_decompressed(src: Path, dest: Path, names: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dest / name).write_bytes(gzip.decompress((src / f"{name}.gz").read_bytes()))


def test_uncompressed_files_are_accepted(shared_data: Path, tmp_path: Path) -> None:
    names = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    _copy_decompressed(shared_data / "mnist", tmp_path / "mnist", names)
    ds = load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    reference = load_dataset("mnist", "test", data_dir=shared_data, download=False)
    np.testing.assert_array_equal(ds.data, reference.data)
    np.testing.assert_array_equal(ds.target, reference.target)


def test_corrupt_local_file_is_reported_and_skipped(shared_data_env: Path, tmp_path: Path) -> None:
    labels = gzip.decompress((shared_data_env / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    altered = bytearray(labels)
    altered[100] = (altered[100] + 1) % 10
    (tmp_path / "mnist").mkdir()
    bad = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(bytes(altered)))
    with pytest.warns(UserWarning, match="failed verification and is not used"):
        ds = load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    assert (
        ds.target.tobytes() == np.frombuffer(labels, np.uint8, offset=8).astype(np.int64).tobytes()
    )


def test_wrong_files_are_rejected(shared_data: Path, tmp_path: Path) -> None:
    # Fashion-MNIST's files filed under mnist/: same format, other content.
    names = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    _copy_decompressed(shared_data / "fashion-mnist", tmp_path / "mnist", names)
    with pytest.warns(UserWarning, match="failed verification"):
        with pytest.raises(DatasetNotFoundError, match="rejected, SHA-256"):
            load_dataset("mnist", "test", data_dir=tmp_path, download=False)


def test_missing_files_give_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path, download=False)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert f"{tmp_path / 'fashion-mnist'} (data_dir): not there" in message
    assert "$NEURAL_KMEANS_DATA is not set" in message
    assert str(download.default_cache_dir() / "fashion-mnist") in message
    for fix in ("data_dir=", "NEURAL_KMEANS_DATA=", "NEURAL_KMEANS_MIRROR="):
        assert fix in message


def test_parse_idx() -> None:
    values = np.arange(-6, 6, dtype=">i2").reshape(3, 4)
    content = bytes([0, 0, 0x0B, 2]) + np.array([3, 4], ">u4").tobytes() + values.tobytes()
    parsed = parse_idx(content)
    np.testing.assert_array_equal(parsed, values)
    assert parsed.dtype == np.int16 and parsed.flags.writeable
    with pytest.raises(ValueError, match="bad magic number"):
        parse_idx(b"\x1f\x8b\x08\x00")
    with pytest.raises(ValueError, match="implies"):
        parse_idx(content[:-1])


def test_dataset_repr_and_unpacking() -> None:
    ds = Dataset(np.zeros((3, 2)), None, None, "rows", "all")
    assert repr(ds) == (
        "Dataset(name='rows', split='all', data=(3, 2) float64, target=None, image_shape=None)"
    )
    X, y = ds
    assert y is None and X.shape == (3, 2)


# --------------------------------------------------------------------------- .npy / .npz


def test_npy_is_memory_mapped(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    path = tmp_path / "rows.npy"
    np.save(path, x)
    ds = load_dataset(path)
    assert isinstance(ds.data, np.memmap) and not ds.data.flags.writeable
    np.testing.assert_array_equal(ds.data, x)
    assert ds.target is None and ds.image_shape is None
    assert (ds.name, ds.split) == (str(path), "all")
    loaded = load_dataset(str(path), mmap_mode=None)
    assert not isinstance(loaded.data, np.memmap)
    np.testing.assert_array_equal(loaded.data, x)


@pytest.mark.parametrize(
    ("shape", "image_shape", "out_shape"),
    [
        ((5, 7, 6), (7, 6), (5, 7, 6)),
        ((5, 3, 7, 6), (3, 7, 6), (5, 3, 7, 6)),
        ((5, 7, 6, 3), (3, 7, 6), (5, 3, 7, 6)),  # channels last, read as channels first
        ((9,), None, (9, 1)),
    ],
)
def test_npy_shapes(tmp_path: Path, shape, image_shape, out_shape) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.ones(shape, np.uint8))
    ds = load_dataset(path)
    assert ds.data.shape == out_shape and ds.image_shape == image_shape


def test_npy_non_numeric(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match="expected numbers"):
        load_dataset(tmp_path / "s.npy")
    np.save(tmp_path / "o.npy", np.array([{}, 1], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"o.npy' holds object values; expected numbers"):
        load_dataset(tmp_path / "o.npy")
    np.save(tmp_path / "5d.npy", np.zeros((2, 1, 1, 1, 1)))
    with pytest.raises(ValueError, match=r"shape \(2, 1, 1, 1, 1\); expected \(n, d\) rows"):
        load_dataset(tmp_path / "5d.npy")


@pytest.mark.parametrize(("xkey", "ykey"), [("x", "y"), ("X", "labels"), ("data", "target")])
def test_npz_keys(tmp_path: Path, xkey: str, ykey: str) -> None:
    x, y = np.arange(12.0).reshape(4, 3), np.array([0.0, 1.0, 1.0, 2.0])
    path = tmp_path / "d.npz"
    np.savez(path, **{xkey: x, ykey: y})
    ds = load_dataset(path)
    np.testing.assert_array_equal(ds.data, x)
    assert ds.target.dtype == np.int64 and ds.target.tolist() == [0, 1, 1, 2]


def test_npz_samples_only(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", X=np.zeros((4, 2, 5, 5), np.uint8))
    ds = load_dataset(tmp_path / "a.npz")
    assert ds.target is None and ds.image_shape == (2, 5, 5)
    np.savez(tmp_path / "b.npz", np.ones((3, 2)))  # saved as arr_0
    assert load_dataset(tmp_path / "b.npz").data.shape == (3, 2)


def test_npz_wrong_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "w.npz", foo=np.zeros((2, 2)), bar=np.zeros(2))
    with pytest.raises(ValueError) as info:
        load_dataset(tmp_path / "w.npz")
    message = str(info.value)
    assert "['foo', 'bar']" in message and "['x', 'X', 'data']" in message
    assert "['y', 'labels', 'target']" in message


def test_npz_bad_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "n.npz", x=np.zeros((3, 2)), y=np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(4,\); expected \(3,\)"):
        load_dataset(tmp_path / "n.npz")
    np.savez(tmp_path / "f.npz", x=np.zeros((2, 2)), y=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="whole numbers"):
        load_dataset(tmp_path / "f.npz")
    np.savez(tmp_path / "s.npz", x=np.zeros((3, 2)), y=np.array(["b", "a", "b"]))
    assert load_dataset(tmp_path / "s.npz").target.tolist() == [1, 0, 1]


def test_npz_in_keras_layout_has_train_and_test_splits(tmp_path: Path) -> None:
    """x_train, y_train, x_test, y_test (keras.datasets' mnist.npz): the splits load
    as MNIST's do, text labels coded alike in both (the test split lacks class 'a')."""
    rng = np.random.default_rng(0)
    x_train, x_test = rng.integers(0, 256, (6, 5, 5), np.uint8), rng.integers(0, 256, (3, 5, 5))
    path = tmp_path / "keras.npz"
    np.savez(path, x_train=x_train, y_train=np.array(list("abcabc")),
             x_test=x_test.astype(np.uint8), y_test=np.array(list("cbc")))  # fmt: skip
    assert has_split(path) and has_split(str(path))
    train, test, both = (load_dataset(path, split) for split in ("train", "test", "all"))
    np.testing.assert_array_equal(train.data, x_train)
    np.testing.assert_array_equal(test.data, x_test)
    np.testing.assert_array_equal(both.data, np.concatenate([x_train, x_test]))
    assert train.target.tolist() == [0, 1, 2, 0, 1, 2] and test.target.tolist() == [2, 1, 2]
    assert both.target.tolist() == train.target.tolist() + test.target.tolist()
    assert (train.split, test.split, both.split) == ("train", "test", "all")
    assert load_dataset(path).split == "train" and train.image_shape == (5, 5)


def test_npz_in_keras_layout_without_test_or_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "t.npz", x_train=np.zeros((4, 3)))
    assert not has_split(tmp_path / "t.npz")
    ds = load_dataset(tmp_path / "t.npz", "all")
    assert ds.data.shape == (4, 3) and ds.target is None
    with pytest.raises(ValueError, match=r"t\.npz' has no test split \(it holds x_train\)"):
        load_dataset(tmp_path / "t.npz", "test")
    np.savez(tmp_path / "u.npz", x_train=np.zeros((4, 3)), y_train=np.arange(4),
             x_test=np.zeros((2, 3)))  # fmt: skip
    assert load_dataset(tmp_path / "u.npz", "all").target is None
    assert load_dataset(tmp_path / "u.npz", "train").target.tolist() == [0, 1, 2, 3]
    np.savez(tmp_path / "v.npz", x_train=np.zeros((4, 3)), x_test=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="x_train and x_test hold samples of other shapes"):
        load_dataset(tmp_path / "v.npz", "all")
    assert not has_split(tmp_path / "missing.npz") and not has_split(tmp_path / "t.npy")


# --------------------------------------------------------------------------- .csv


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_numeric_without_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.csv", "1,2,3\n4.5,-5,6e1\n\n7,8,9\n")
    ds = load_dataset(path)
    assert ds.data.dtype == np.float64
    np.testing.assert_array_equal(ds.data, [[1, 2, 3], [4.5, -5, 60], [7, 8, 9]])
    assert ds.target is None and ds.image_shape is None


def test_csv_header_and_label_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.csv", "a,b,species\n1,2,setosa\n3,4,virginica\n5,6,setosa\n")
    assert load_dataset(path, label_column="species").target.tolist() == [0, 1, 0]
    for column in (2, -1, "2", "-1"):
        ds = load_dataset(path, label_column=column)
        np.testing.assert_array_equal(ds.data, [[1, 2], [3, 4], [5, 6]])
        assert ds.target.tolist() == [0, 1, 0]
    numeric = _write(tmp_path / "n.csv", "7,1,2\n3,3,4\n7,5,6\n")
    ds = load_dataset(numeric, label_column=0)
    assert ds.target.tolist() == [7, 3, 7] and ds.data.shape == (3, 2)
    header_only_features = _write(tmp_path / "f.csv", "x,y\n1,2\n3,4\n")
    np.testing.assert_array_equal(load_dataset(header_only_features).data, [[1, 2], [3, 4]])


def test_csv_label_column_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.csv", "a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"'label' not found .*columns: \['a', 'b'\]"):
        load_dataset(path, label_column="label")
    with pytest.raises(ValueError, match=r"out of range .* 2 columns"):
        load_dataset(path, label_column=5)
    no_header = _write(tmp_path / "n.csv", "1,2\n")
    with pytest.raises(ValueError, match="no header row; give an index"):
        load_dataset(no_header, label_column="label")
    with pytest.raises(ValueError, match="no feature columns"):
        load_dataset(_write(tmp_path / "one.csv", "1\n2\n"), label_column=0)


def test_csv_ragged(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", "1,2,3\n4,5,6\n7,8\n")
    with pytest.raises(ValueError, match="ragged: line 3 has 2 fields, expected 3"):
        load_dataset(path)


def test_csv_non_numeric(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.csv", "a,b\n1,2\n3,abc\n")
    with pytest.raises(ValueError, match=r"not numeric: 'abc' at line 3, column 1 \('b'\)"):
        load_dataset(path)
    labels = _write(tmp_path / "l.csv", "1,2,0.5\n3,4,1\n")
    with pytest.raises(ValueError, match="whole numbers"):
        load_dataset(labels, label_column=-1)


def test_csv_empty(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is empty"):
        load_dataset(_write(tmp_path / "e.csv", "\n\n"))
    with pytest.raises(ValueError, match="header but no data rows"):
        load_dataset(_write(tmp_path / "h.csv", "a,b\n"))


# --------------------------------------------------------------------------- image folders


def _save(path: Path, array: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    assert image.mode == mode
    image.save(path)


def test_greyscale_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    names = [
        ("cat", "b.png"),
        ("cat", "a.PNG"),
        ("ant", "x.png"),
        ("dog", "1.png"),
        ("dog", "2.png"),
    ]
    for img, (cls, name) in zip(images, names, strict=True):
        _save(tmp_path / "imgs" / cls / name, img, "L")
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "imgs" / "empty").mkdir()
    ds = load_dataset(tmp_path / "imgs")
    assert ds.data.shape == (5, 6, 4) and ds.data.dtype == np.uint8
    assert ds.image_shape == (6, 4) and ds.split == "all"
    # classes sorted by name (ant, cat, dog), files sorted within each class
    assert ds.target.tolist() == [0, 1, 1, 2, 2]
    np.testing.assert_array_equal(ds.data, images[[2, 1, 0, 3, 4]])


def test_rgb_folder_is_channels_first(tmp_path: Path) -> None:
    rgb = np.zeros((3, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    _save(tmp_path / "c" / "a" / "1.png", rgb, "RGB")
    _save(tmp_path / "c" / "b" / "2.jpg", np.full((3, 5, 3), 200, np.uint8), "RGB")
    _save(tmp_path / "c" / "b" / "3.jpeg", np.full((3, 5), 77, np.uint8), "L")  # grey -> RGB
    ds = load_dataset(tmp_path / "c")
    assert ds.data.shape == (3, 3, 3, 5) and ds.image_shape == (3, 3, 5)
    assert ds.data.dtype == np.uint8 and ds.target.tolist() == [0, 1, 1]
    assert ds.data[0, :, 0, 0].tolist() == [10, 20, 30]
    assert np.abs(ds.data[1].astype(int) - 200).max() <= 2  # JPEG is lossy
    assert np.abs(ds.data[2].astype(int) - 77).max() <= 2


def test_flat_folder_has_no_labels(tmp_path: Path) -> None:
    for i in range(3):
        _save(tmp_path / f"{i}.png", np.full((2, 2), i, np.uint8), "L")
    ds = load_dataset(tmp_path)
    assert ds.target is None and ds.data[:, 0, 0].tolist() == [0, 1, 2]


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "class").mkdir(parents=True)
    expected = r"no \.png/\.jpg/\.jpeg images .* one sub-folder per class"
    with pytest.raises(ValueError, match=expected):
        load_dataset(tmp_path / "empty")
    _save(tmp_path / "mixed" / "a" / "1.png", np.zeros((4, 4), np.uint8), "L")
    _save(tmp_path / "mixed" / "b" / "2.png", np.zeros((4, 5), np.uint8), "L")
    with pytest.raises(ValueError, match=r"mixed sizes: .* is 4x4 but .* is 5x4"):
        load_dataset(tmp_path / "mixed")
    _save(tmp_path / "both" / "a" / "1.png", np.zeros((4, 4), np.uint8), "L")
    _save(tmp_path / "both" / "2.png", np.zeros((4, 4), np.uint8), "L")
    with pytest.raises(ValueError, match=r"both images .* and class sub-folders"):
        load_dataset(tmp_path / "both")
    (tmp_path / "junk" / "a").mkdir(parents=True)
    (tmp_path / "junk" / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        load_dataset(tmp_path / "junk")
    _save(tmp_path / "deep" / "a" / "1.png", np.zeros((2, 2), np.uint16), "I;16")
    with pytest.raises(ValueError, match=r"mode 'I.*'; expected 8-bit greyscale or RGB"):
        load_dataset(tmp_path / "deep")


# --------------------------------------------------------------------------- bad paths


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no such file or folder: .*nope.npy"):
        load_dataset(tmp_path / "nope.npy")
    with pytest.raises(FileNotFoundError, match="data set names: digits, mnist"):
        load_dataset(str(tmp_path / "nope"))


def test_unsupported_extension(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.txt", "1,2\n")
    with pytest.raises(ValueError, match=r"unsupported file type '.txt' .* expected a .npy, .npz"):
        load_dataset(path)
    with pytest.raises(ValueError, match=r"unsupported file type '\(no extension\)'"):
        load_dataset(_write(tmp_path / "README", "x"))
