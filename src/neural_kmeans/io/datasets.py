"""Load the data sets to cluster: named ones and the user's own files.

:func:`load_dataset` takes either a name from :data:`DATASET_NAMES` or a path:

* ``"digits"`` — scikit-learn's bundled 8x8 handwritten digits (1,797 images),
  float32 in [0, 1]; needs no files nor network.
* ``"mnist"``, ``"fashion-mnist"`` — 28x28 uint8 images from the standard gzip IDX
  files, found or downloaded by :mod:`neural_kmeans.io.download`; splits ``"train"``
  (60,000), ``"test"`` (10,000) and ``"all"`` (70,000).
* ``"blobs"``, ``"moons"``, ``"circles"`` — seeded 2-D toy sets from scikit-learn.
* a ``.npy`` file (samples only, memory-mapped by default), a ``.npz`` file (samples
  under ``x``, ``X`` or ``data``; optional labels under ``y``, ``labels`` or
  ``target``), a numeric ``.csv`` file (a label column only when named), or a folder
  of PNG/JPEG images with one sub-folder per class, read by
  :mod:`neural_kmeans.io.sample_files`: a damaged or hostile file gets a one-line
  ``ValueError`` that names it and says what to do, before any large allocation; so
  does one declaring more than ``$NEURAL_KMEANS_MAX_BYTES`` bytes (see that module).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neural_kmeans.core.validation import channels_first
from neural_kmeans.io.download import (
    IDX_FILES,
    DatasetNotFoundError,
    default_cache_dir,
    fetch_idx,
)
from neural_kmeans.io.sample_files import (
    IMAGE_EXTENSIONS,
    npz_splits,
    read_csv,
    read_image_folder,
    read_npy,
    read_npz,
)

__all__ = [
    "DATASET_NAMES",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "Dataset",
    "DatasetNotFoundError",
    "default_cache_dir",
    "has_split",
    "load_dataset",
    "parse_idx",
]

#: The data sets :func:`load_dataset` knows by name.
DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "blobs", "moons", "circles")
#: Valid values of ``split``.
SPLITS: tuple[str, ...] = ("train", "test", "all")

_IDX_DATASETS = ("mnist", "fashion-mnist")
_FILE_SUFFIXES = (".npy", ".npz", ".csv")
_DEFAULT_TOY_SAMPLES = 1500
_DEFAULT_NOISE = 0.05  # of moons and circles

# IDX type codes (third byte of the magic number) and the dtypes they stand for.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass
class Dataset:
    """Samples to cluster, with their labels when known.

    Iterating over it yields ``data`` then ``target``, so
    ``X, y = load_dataset(...)`` works.

    Attributes
    ----------
    data : ndarray of shape (n, h, w), (n, c, h, w) or (n, d)
        The samples: images (greyscale, or channels first: files of (n, h, w, c) images
        with 1-4 channels are turned so, a copy) or feature rows. MNIST-like
        and image-folder data are uint8; ``.npy`` data may be a read-only memory map.
    target : ndarray of shape (n,) and dtype int64, or None
        Class labels, or None when the source has none.
    image_shape : tuple of int, or None
        ``(h, w)`` or ``(c, h, w)`` for images, None for feature rows.
    name : str
        The data set's name, or the path it was read from.
    split : str
        ``"train"``, ``"test"`` or ``"all"`` (always ``"all"`` for sources without a split).
    """

    data: np.ndarray
    target: np.ndarray | None
    image_shape: tuple[int, ...] | None
    name: str
    split: str

    def __iter__(self) -> Iterator[np.ndarray | None]:
        yield self.data
        yield self.target

    def __repr__(self) -> str:
        labels = "None" if self.target is None else f"{self.target.shape} {self.target.dtype}"
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, "
            f"data={self.data.shape} {self.data.dtype}, target={labels}, "
            f"image_shape={self.image_shape})"
        )


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def has_split(name: str | os.PathLike[str]) -> bool:
    """Tell whether a data set has distinct train and test splits.

    Parameters
    ----------
    name : str or path-like
        A data set name or a path.

    Returns
    -------
    bool
        True for ``"mnist"`` and ``"fashion-mnist"``, and for ``.npz`` archives in
        Keras's layout with both ``x_train`` and ``x_test``; False for the others, whose
        every split gives all the samples.
    """
    if isinstance(name, str) and _normalise_name(name) in _IDX_DATASETS:
        return True
    if not isinstance(name, str | os.PathLike):
        return False
    path = Path(name).expanduser()
    if path.suffix.lower() != ".npz" or not path.is_file():
        return False
    try:
        return npz_splits(path) == ("train", "test")
    except ValueError:
        return False  # loading the file says what is wrong with it


def load_dataset(
    name: str | os.PathLike[str],
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    n_samples: int | None = None,
    random_state: int | None = 0,
    noise: float | None = None,
    centers: int = 3,
    label_column: str | int | None = None,
    mmap_mode: str | None = "r",
    download: bool = True,
    progressbar: bool | None = None,
) -> Dataset:
    """Load a named data set or the samples stored at a path.

    Parameters
    ----------
    name : str or path-like
        One of :data:`DATASET_NAMES` (case-insensitive, ``_`` accepted for ``-``), or
        the path of a ``.npy``, ``.npz`` or ``.csv`` file or of an image folder. A name
        wins over a file of the same name: write ``./mnist`` for the file.
    split : {"train", "test", "all"}, default="train"
        The part of MNIST / Fashion-MNIST, or of a ``.npz`` archive in Keras's layout
        (``x_train``, ``y_train``, ``x_test``, ``y_test``), to load; other sources have
        no split and give all their samples for any valid value.
    data_dir : path-like, optional
        Folder searched first for the MNIST-like files (``data_dir/<name>/`` or
        ``data_dir`` itself); see :mod:`neural_kmeans.io.download` for the other places.
    n_samples : int, optional
        Number of samples of a toy set (default 1,500); ignored by other sources.
    random_state : int or None, default=0
        Seed of a toy set; ignored by other sources.
    noise : float, optional
        Standard deviation of the Gaussian noise of ``"moons"`` and ``"circles"``
        (default 0.05); ignored by other sources.
    centers : int, default=3
        Number of clusters of ``"blobs"``; ignored by other sources.
    label_column : str or int, optional
        CSV column holding the labels, by header name or index (negative counts from
        the end). Without it every column is a feature. Non-numeric labels are coded
        0..k-1 in sorted order.
    mmap_mode : {"r", "r+", "c", None}, default="r"
        Memory-map mode for ``.npy`` files, so large files are not read into memory;
        None reads the whole array. What is read into memory may take at most
        ``$NEURAL_KMEANS_MAX_BYTES`` bytes (default: the memory available).
    download : bool, default=True
        Download missing MNIST-like files into the cache.
    progressbar : bool, optional
        Show a progress bar while downloading; default: when standard error is a
        terminal.

    Returns
    -------
    Dataset
        ``data`` of shape (n, h, w), (n, c, h, w) or (n, d), ``target`` of shape (n,)
        int64 or None, ``image_shape``, ``name`` and ``split``.

    Raises
    ------
    ValueError
        For an unknown or empty name, a bad split, an unsupported file type, a FIFO or
        device, content that cannot be read as samples (damaged, misnamed, values beyond
        float32's range) or a declared size beyond the file or the memory limit; the
        message names the file and says what to do.
    FileNotFoundError
        For a path that does not exist.
    DatasetNotFoundError
        When MNIST-like files are not found and cannot be downloaded.

    Examples
    --------
    >>> X, y = load_dataset("digits")
    >>> X.shape, X.dtype, y.shape
    ((1797, 8, 8), dtype('float32'), (1797,))
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)}")
    if isinstance(name, str) and _normalise_name(name) in DATASET_NAMES:
        key = _normalise_name(name)
        if key == "digits":
            return _load_digits()
        if key in _IDX_DATASETS:
            return _load_idx_dataset(
                key, split, data_dir, download=download, progressbar=progressbar
            )
        return _load_toy(key, n_samples, random_state, noise, centers)
    return _load_file(_as_path(name), str(name), mmap_mode, label_column, split)


def _load_file(
    path: Path, name: str, mmap_mode: str | None, label_column: str | int | None, split: str
) -> Dataset:
    """A data set from a folder of images or a .npy, .npz or .csv file; images whose
    channels come last are turned channels first (a copy). Only ``.npz`` archives in
    Keras's layout have splits."""
    suffix = "" if path.is_dir() else path.suffix.lower()
    if not (suffix == ".npz" and npz_splits(path)):
        split = "all"
    if path.is_dir():
        data, target = read_image_folder(path)
    elif suffix == ".npy":
        data, target = read_npy(path, mmap_mode), None
    elif suffix == ".npz":
        data, target = read_npz(path, split)
    else:
        data, target = read_csv(path, label_column)
    data = channels_first(data)
    image_shape = tuple(int(s) for s in data.shape[1:]) if data.ndim > 2 else None
    return Dataset(data, target, image_shape, name, split)


def _as_path(name: str | os.PathLike[str]) -> Path:
    """Turn ``name`` into an existing, supported path or raise a helpful error."""
    known = ", ".join(DATASET_NAMES)
    kinds = "a .npy, .npz or .csv file, or a folder of images with one sub-folder per class"
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a data set name or a path, got {type(name).__name__}")
    if isinstance(name, str) and not name.strip():
        raise ValueError(
            f"the data set name is empty: give one of {known}, or the path of {kinds} "
            "(write . for the current folder)"
        )
    path = Path(name).expanduser()
    looks_like_path = not isinstance(name, str) or (
        path.suffix != "" or os.sep in name or "/" in name or path.exists()
    )
    if not looks_like_path:
        close = difflib.get_close_matches(_normalise_name(name), DATASET_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown data set {name!r}.{hint} Known data sets: {known}; or give the path of "
            f"{kinds}."
        )
    if not path.exists():
        raise FileNotFoundError(
            f"no such file or folder: {str(path)!r}. Give the path of {kinds}, "
            f"or one of the data set names: {known}."
        )
    if not path.is_dir() and path.suffix.lower() not in _FILE_SUFFIXES:
        raise ValueError(
            f"unsupported file type {path.suffix or '(no extension)'!r} for {str(path)!r}: "
            f"expected {kinds}."
        )
    if not path.is_dir() and not path.is_file():  # opening a FIFO would block
        raise ValueError(
            f"{str(path)!r} is not a regular file (a FIFO, a device or a socket): "
            f"give the path of {kinds}"
        )
    return path


# --------------------------------------------------------------------------- named sets


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    return Dataset(images, bunch.target.astype(np.int64), (8, 8), "digits", "all")


def _load_toy(
    name: str, n_samples: int | None, random_state: int | None, noise: float | None, centers: int
) -> Dataset:
    from sklearn import datasets as skd

    n = _DEFAULT_TOY_SAMPLES if n_samples is None else int(n_samples)
    if n < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples!r}")
    sd = _DEFAULT_NOISE if noise is None else noise
    if name == "blobs":
        x, y = skd.make_blobs(n_samples=n, centers=centers, random_state=random_state)
    elif name == "moons":
        x, y = skd.make_moons(n_samples=n, noise=float(sd), random_state=random_state)
    else:
        x, y = skd.make_circles(n_samples=n, noise=float(sd), factor=0.5, random_state=random_state)
    return Dataset(x.astype(np.float32), y.astype(np.int64), None, name, "all")


def parse_idx(content: bytes) -> np.ndarray:
    """Decode the content of an (uncompressed) IDX file.

    Parameters
    ----------
    content : bytes
        The file: a 4-byte magic number (0, 0, type code, number of dimensions), the
        big-endian 32-bit dimensions, then the values.

    Returns
    -------
    ndarray of shape given by the header
        A writable array in native byte order (uint8 for MNIST-like files).

    Raises
    ------
    ValueError
        If the header is invalid or the size does not match it.
    """
    if len(content) < 4 or content[0] != 0 or content[1] != 0 or content[2] not in _IDX_DTYPES:
        raise ValueError("not an IDX file: bad magic number")
    dtype, ndim = _IDX_DTYPES[content[2]], content[3]
    header = 4 + 4 * ndim
    if len(content) < header:
        raise ValueError("not an IDX file: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(content, ">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) != expected:
        raise ValueError(
            f"IDX file has {len(content)} bytes; its header {shape} implies {expected}"
        )
    values = np.frombuffer(content, dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=True)


def _load_idx_dataset(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None,
    *,
    download: bool,
    progressbar: bool | None,
) -> Dataset:
    parts = ("train", "test") if split == "all" else (split,)
    images, labels = [], []
    for part in parts:
        for filename, out in zip(IDX_FILES[part], (images, labels), strict=True):
            content = fetch_idx(
                name, filename, data_dir, download=download, progressbar=progressbar
            )
            out.append(parse_idx(content))
            del content
    data = images[0] if len(images) == 1 else np.concatenate(images)
    target = (labels[0] if len(labels) == 1 else np.concatenate(labels)).astype(np.int64)
    if data.ndim != 3 or data.shape[0] != target.shape[0]:
        raise ValueError(f"{name} {split}: images {data.shape} do not match labels {target.shape}")
    return Dataset(data, target, tuple(data.shape[1:]), name, split)
