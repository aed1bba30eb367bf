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
  of PNG/JPEG images with one sub-folder per class.
"""

from __future__ import annotations

import csv
import difflib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neural_kmeans.io.download import (
    IDX_FILES,
    DatasetNotFoundError,
    default_cache_dir,
    fetch_idx,
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
#: File name endings read as images in a folder (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")

_IDX_DATASETS = ("mnist", "fashion-mnist")
_TOY_DATASETS = ("blobs", "moons", "circles")
_FILE_SUFFIXES = (".npy", ".npz", ".csv")
_NPZ_DATA_KEYS = ("x", "X", "data")
_NPZ_LABEL_KEYS = ("y", "labels", "target")
_DEFAULT_TOY_SAMPLES = 1500
_DEFAULT_NOISE = {"moons": 0.05, "circles": 0.05}

# IDX type codes (third byte of the magic number) and the dtypes they stand for.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GREY_MODES = frozenset({"1", "L", "LA"})
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})


@dataclass
class Dataset:
    """Samples to cluster, with their labels when known.

    Iterating over it yields ``data`` then ``target``, so
    ``X, y = load_dataset(...)`` works.

    Attributes
    ----------
    data : ndarray of shape (n, h, w), (n, c, h, w) or (n, d)
        The samples: images (greyscale, or channels first) or feature rows. MNIST-like
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
        True for ``"mnist"`` and ``"fashion-mnist"``; False for the others, whose
        every split gives all the samples, and for paths.
    """
    return isinstance(name, str) and _normalise_name(name) in _IDX_DATASETS


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
        The part of MNIST / Fashion-MNIST to load; other sources have no split and
        give all their samples for any valid value.
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
        None reads the whole array.
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
        For an unknown name, a bad split, an unsupported file type or content that
        cannot be read as samples (the message says what was expected).
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
    path = _as_path(name)
    if path.is_dir():
        data, target = _load_image_folder(path)
    else:
        suffix = path.suffix.lower()
        if suffix == ".npy":
            data, target = _load_npy(path, mmap_mode), None
        elif suffix == ".npz":
            data, target = _load_npz(path)
        else:
            data, target = _load_csv(path, label_column)
    image_shape = tuple(int(s) for s in data.shape[1:]) if data.ndim > 2 else None
    return Dataset(data, target, image_shape, str(name), "all")


def _as_path(name: str | os.PathLike[str]) -> Path:
    """Turn ``name`` into an existing, supported path or raise a helpful error."""
    known = ", ".join(DATASET_NAMES)
    kinds = "a .npy, .npz or .csv file, or a folder of images with one sub-folder per class"
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a data set name or a path, got {type(name).__name__}")
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
    if name == "blobs":
        x, y = skd.make_blobs(n_samples=n, centers=centers, random_state=random_state)
    else:
        sd = _DEFAULT_NOISE[name] if noise is None else float(noise)
        if name == "moons":
            x, y = skd.make_moons(n_samples=n, noise=sd, random_state=random_state)
        else:
            x, y = skd.make_circles(n_samples=n, noise=sd, factor=0.5, random_state=random_state)
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


# --------------------------------------------------------------------------- files


def _check_samples(data: np.ndarray, source: Path) -> np.ndarray:
    if data.dtype.kind not in "biuf":
        raise ValueError(
            f"{str(source)!r} holds {data.dtype} values; expected numbers (int, uint, float)"
        )
    if data.ndim == 1:
        data = data.reshape(-1, 1)
    if data.ndim not in (2, 3, 4):
        raise ValueError(
            f"{str(source)!r} holds an array of shape {data.shape}; expected (n, d) rows, "
            "(n, h, w) greyscale images or (n, c, h, w) channels-first images"
        )
    if data.shape[0] == 0:
        raise ValueError(f"{str(source)!r} holds no samples (shape {data.shape})")
    return data


def _as_labels(values: np.ndarray, n: int, source: str) -> np.ndarray:
    """Validate labels and return them as int64, coding non-numeric ones 0..k-1."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != n:
        raise ValueError(f"labels in {source} have shape {values.shape}; expected ({n},)")
    if values.dtype.kind in "biu":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise ValueError(f"labels in {source} must be whole numbers; found fractions or NaN")
        return values.astype(np.int64)
    if values.dtype.kind in "USO":
        _, codes = np.unique(values.astype(str), return_inverse=True)
        return codes.astype(np.int64).reshape(-1)
    raise ValueError(f"labels in {source} have unsupported type {values.dtype}")


def _load_npy(path: Path, mmap_mode: str | None) -> np.ndarray:
    try:
        data = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"cannot read {str(path)!r} as a numeric .npy array: {exc}") from exc
    return _check_samples(data, path)


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"cannot read {str(path)!r} as a .npz archive: {exc}") from exc
    with archive:
        keys = list(archive.files)
        data_key = next((k for k in _NPZ_DATA_KEYS if k in keys), None)
        if data_key is None and keys == ["arr_0"]:
            data_key = "arr_0"  # np.savez(path, x) with a single unnamed array
        if data_key is None:
            raise ValueError(
                f"{str(path)!r} has arrays {keys}; expected the samples under one of "
                f"{list(_NPZ_DATA_KEYS)} (and optional labels under one of "
                f"{list(_NPZ_LABEL_KEYS)}), e.g. np.savez(path, x=X, y=labels)"
            )
        try:
            data = _check_samples(archive[data_key], path)
            label_key = next((k for k in _NPZ_LABEL_KEYS if k in keys), None)
            target = None
            if label_key is not None:
                source = f"{str(path)!r} (key {label_key!r})"
                target = _as_labels(archive[label_key], data.shape[0], source)
        except ValueError as exc:
            if "Object arrays cannot be loaded" in str(exc):
                raise ValueError(f"{str(path)!r} holds object arrays; expected numbers") from exc
            raise
    return data, target


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _resolve_label_column(
    first: list[str], label_column: str | int | None, path: Path
) -> tuple[int | None, bool]:
    """Return the label column's index (or None) and whether the first row is a header."""
    ncols = len(first)
    names = [cell.strip() for cell in first]
    if label_column is None:
        return None, not all(_is_number(c) for c in first)
    index: int | None = None
    if isinstance(label_column, str) and label_column.strip() in names:
        return names.index(label_column.strip()), True
    if isinstance(label_column, (int, np.integer)) and not isinstance(label_column, bool):
        index = int(label_column)
    elif isinstance(label_column, str) and label_column.strip().lstrip("+-").isdigit():
        index = int(label_column)
    if index is None:
        has_header = not all(_is_number(c) for c in first)
        where = f"columns: {names}" if has_header else "it has no header row; give an index"
        raise ValueError(f"label_column {label_column!r} not found in {str(path)!r} ({where})")
    if not -ncols <= index < ncols:
        raise ValueError(
            f"label_column {label_column!r} is out of range for {str(path)!r}, "
            f"which has {ncols} columns"
        )
    index %= ncols
    others = [c for i, c in enumerate(first) if i != index]
    return index, not all(_is_number(c) for c in others)


def _load_csv(path: Path, label_column: str | int | None) -> tuple[np.ndarray, np.ndarray | None]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        rows: list[list[str]] = []
        lines: list[int] = []
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append(row)
                lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{str(path)!r} is empty; expected numeric comma-separated rows")
    label_index, has_header = _resolve_label_column(rows[0], label_column, path)
    header = [c.strip() for c in rows[0]] if has_header else None
    if has_header:
        rows, lines = rows[1:], lines[1:]
    if not rows:
        raise ValueError(f"{str(path)!r} has a header but no data rows")
    ncols = len(header) if header is not None else len(rows[0])
    for row, line in zip(rows, lines, strict=True):
        if len(row) != ncols:
            raise ValueError(
                f"{str(path)!r} is ragged: line {line} has {len(row)} fields, expected {ncols}"
            )
    keep = [i for i in range(ncols) if i != label_index]
    if not keep:
        raise ValueError(f"{str(path)!r} has no feature columns besides the label column")
    cells = np.array(rows, dtype=str)
    try:
        data = cells[:, keep].astype(np.float64)
    except ValueError:
        for row, line in zip(rows, lines, strict=True):
            for i in keep:
                if not _is_number(row[i]):
                    column = f"column {i}" + (f" ({header[i]!r})" if header else "")
                    raise ValueError(
                        f"{str(path)!r} is not numeric: {row[i]!r} at line {line}, {column}; "
                        "only numbers are read as features (name a label column with "
                        "label_column=)"
                    ) from None
        raise
    target = None
    if label_index is not None:
        labels = cells[:, label_index]
        if all(_is_number(v) for v in labels):
            labels = labels.astype(np.float64)
        column = header[label_index] if header else label_index
        target = _as_labels(labels, data.shape[0], f"{str(path)!r} (column {column!r})")
    return data, target


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _load_image_folder(folder: Path) -> tuple[np.ndarray, np.ndarray | None]:
    from PIL import Image, UnidentifiedImageError

    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = [(d, files) for d in subdirs if (files := _image_files(d))]
    loose = _image_files(folder)
    exts = "/".join(IMAGE_EXTENSIONS)
    if not classes and not loose:
        raise ValueError(
            f"no {exts} images in {str(folder)!r}; expected one sub-folder per class "
            "holding the images of that class"
        )
    if classes and loose:
        raise ValueError(
            f"{str(folder)!r} has both images ({loose[0].name}, ...) and class sub-folders; "
            "put every image in its class's sub-folder"
        )
    if classes:
        files = [f for _, fs in classes for f in fs]
        target: np.ndarray | None = np.repeat(
            np.arange(len(classes), dtype=np.int64), [len(fs) for _, fs in classes]
        )
    else:
        files, target = loose, None

    # First pass: headers only (size and mode), so nothing is decoded twice.
    sizes, colour = [], False
    for f in files:
        try:
            with Image.open(f) as img:
                size, mode = img.size, img.mode
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"cannot read image {str(f)!r}: {exc}") from exc
        if mode not in _GREY_MODES and mode not in _COLOUR_MODES:
            raise ValueError(f"image {str(f)!r} has mode {mode!r}; expected 8-bit greyscale or RGB")
        colour = colour or mode in _COLOUR_MODES
        if sizes and size != sizes[0]:
            raise ValueError(
                f"images in {str(folder)!r} have mixed sizes: {str(files[0])!r} is "
                f"{sizes[0][0]}x{sizes[0][1]} but {str(f)!r} is {size[0]}x{size[1]} "
                "(width x height); resize them to one size"
            )
        sizes.append(size)
    width, height = sizes[0]
    shape = (len(files), 3, height, width) if colour else (len(files), height, width)
    data = np.empty(shape, dtype=np.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as img:
            if colour:
                data[i] = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
            else:
                data[i] = np.asarray(img.convert("L"))
    return data, target
