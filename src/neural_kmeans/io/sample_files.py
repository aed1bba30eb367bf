"""Read the samples of the user's own files: ``.npy``, ``.npz``, ``.csv``, image folders.

:func:`neural_kmeans.io.datasets.load_dataset` calls these readers for a path. A damaged
or hostile file gets a ``ValueError`` whose one line names the file and says how to fix
it, raised before anything large is allocated: a file's declared size (a ``.npy`` header
or that of a ``.npz`` member: shape and dtype; a PNG or JPEG header: width and height)
is checked against the bytes the file holds and against the memory limit first, zip,
numpy, csv and PIL errors are reported with the file's name, and a value beyond
float32's range (in which the networks compute) is refused with the advice to scale.

Environment variables
---------------------
``NEURAL_KMEANS_MAX_BYTES``
    The most bytes the samples of one file may take in memory (default: the memory
    available now: ``MemAvailable`` on Linux, else the physical memory). A memory-mapped
    ``.npy`` file is read from disk as needed and is not limited.
"""

from __future__ import annotations

import csv
import math
import os
import struct
import sys
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy_format

__all__ = [
    "ENV_MAX_BYTES",
    "IMAGE_EXTENSIONS",
    "memory_limit",
    "npz_splits",
    "read_csv",
    "read_image_folder",
    "read_npy",
    "read_npz",
]

ENV_MAX_BYTES = "NEURAL_KMEANS_MAX_BYTES"
#: File name endings read as images in a folder (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")

_NPZ_DATA_KEYS = ("x", "X", "data")
_NPZ_LABEL_KEYS = ("y", "labels", "target")
_NPY_MAGIC = npy_format.MAGIC_PREFIX
_ZIP_MAGIC = b"PK"
# What zipfile and numpy raise for a damaged archive or member.
_ZIP_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    RuntimeError,  # an encrypted member
    NotImplementedError,  # an unknown compression method
    zipfile.BadZipFile,
    zlib.error,
)
# What PIL raises for a damaged image (besides DecompressionBombError, for a huge one).
_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error)
_GREY_MODES = frozenset({"1", "L", "LA"})
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Values per block when an array is scanned (a memory map is never read whole).
_BLOCK_VALUES = 1 << 20


def _available_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): no limit
        return sys.maxsize


def memory_limit() -> int:
    """Return the most bytes the samples of one data file may take in memory.

    Returns
    -------
    int
        ``$NEURAL_KMEANS_MAX_BYTES`` when set, else the memory available now.

    Raises
    ------
    ValueError
        If ``$NEURAL_KMEANS_MAX_BYTES`` is not a positive number.
    """
    raw = os.environ.get(ENV_MAX_BYTES, "").strip()
    if not raw:
        return _available_memory()
    try:
        limit = int(float(raw))
    except (ValueError, OverflowError):
        limit = 0
    if limit < 1:
        raise ValueError(
            f"${ENV_MAX_BYTES} must be a positive number of bytes (e.g. 8e9), got {raw!r}"
        )
    return limit


def _check_allocation(nbytes: int, what: str, source: str, fix: str) -> None:
    """Refuse data that would take more than :func:`memory_limit` bytes; ``what`` is what
    ``source`` declares, ``fix`` what else the user can do."""
    limit = memory_limit()
    if nbytes > limit:
        set_ = os.environ.get(ENV_MAX_BYTES, "").strip()
        origin = f"the limit ${ENV_MAX_BYTES}" if set_ else "the memory available"
        raise ValueError(
            f"{source} declares {what} ({nbytes:,} bytes), more than {origin} "
            f"({limit:,} bytes): {fix}, or set {ENV_MAX_BYTES} to a larger number of bytes"
        )


def _read_npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype the ``.npy`` header at ``f``'s position declares (numpy's
    ``ValueError`` if it is none); ``f`` is left at the first value."""
    version = npy_format.read_magic(f)
    readers = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
    if version not in readers:  # 3.0 is for structured dtypes with non-Latin-1 field names
        raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    try:
        shape, _, dtype = readers[version](f)
    except (SyntaxError, tokenize.TokenError, LookupError, TypeError) as exc:  # from its parser
        raise ValueError(f"cannot parse the .npy header ({type(exc).__name__}: {exc})") from exc
    return shape, dtype


def _check_declared_size(
    shape: tuple[int, ...], dtype: np.dtype, present: int, source: str, fix: str | None
) -> None:
    """Refuse a declared array of more bytes than the ``present`` bytes of values or, when
    it is read into memory (``fix`` given, see :func:`_check_allocation`), the limit."""
    nbytes = math.prod(shape) * dtype.itemsize
    what = f"an array of shape {shape} and dtype {dtype}"
    if nbytes > present:
        raise ValueError(
            f"{source} is truncated or damaged: it declares {what} ({nbytes:,} bytes) but "
            f"holds {max(present, 0):,} bytes of values; save it again"
        )
    if fix is not None:
        _check_allocation(nbytes, what, source, fix)


def _check_declared(shape: tuple[int, ...], dtype: np.dtype, source: str) -> None:
    """Refuse samples that are not numbers, or not of 1 to 4 dimensions, or none at all."""
    if dtype.kind not in "biuf":
        raise ValueError(f"{source} holds {dtype} values; expected numbers (int, uint, float)")
    if len(shape) not in (1, 2, 3, 4):
        raise ValueError(
            f"{source} holds an array of shape {shape}; expected (n, d) rows, "
            "(n, h, w) greyscale images or (n, c, h, w) / (n, h, w, c) colour images"
        )
    if shape[0] == 0:
        raise ValueError(f"{source} holds no samples (shape {shape})")


def _check_samples(data: np.ndarray, source: str) -> np.ndarray:
    _check_declared(data.shape, data.dtype, source)
    if data.ndim == 1:
        data = data.reshape(-1, 1)
    _check_float32_range(data, source)
    return data


def _check_float32_range(data: np.ndarray, source: str) -> None:
    """Refuse finite values beyond float32's range, in which the networks compute; read
    block by block, so a memory map is never loaded whole."""
    if data.dtype.kind != "f" or data.dtype.itemsize <= 4:
        return
    step = max(1, _BLOCK_VALUES // max(1, math.prod(data.shape[1:])))
    for start in range(0, data.shape[0], step):
        block = np.abs(data[start : start + step])
        beyond = np.isfinite(block) & (block > _FLOAT32_MAX)
        if beyond.any():
            first = tuple(np.argwhere(beyond)[0])
            raise ValueError(
                f"{source} holds values beyond float32's range (±3.4e38): {block[first]:.3g} "
                f"in sample {start + int(first[0])}; scale the data (e.g. divide it by its "
                "largest absolute value)"
            )


def read_npy(path: Path, mmap_mode: str | None) -> np.ndarray:
    """Read the samples of a ``.npy`` file, memory-mapped unless ``mmap_mode`` is None.

    Its header is checked first: numbers of 1 to 4 dimensions, no more than the file
    holds and, read into memory, no more than :func:`memory_limit`.
    """
    source = repr(str(path))
    with open(path, "rb") as f:
        if f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
            raise ValueError(
                f"{source} is a .npz archive (zip), not a .npy array: rename it to {path.stem}.npz"
            )
        f.seek(0)
        try:
            shape, dtype = _read_npy_header(f)
        except ValueError as exc:
            raise ValueError(
                f"cannot read {source} as a .npy array: {exc}; save the array with np.save"
            ) from exc
        present = os.fstat(f.fileno()).st_size - f.tell()
    _check_declared(shape, dtype, source)
    fix = "load it memory-mapped (mmap_mode='r')" if mmap_mode is None else None
    _check_declared_size(shape, dtype, present, source, fix)
    try:
        data = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"cannot read {source} as a numeric .npy array: {exc}") from exc
    return _check_samples(data, source)


def _npz_array(archive: zipfile.ZipFile, name: str, source: str, samples: bool) -> np.ndarray:
    """Read one member (the samples, or labels) after checking what its header declares."""
    try:
        with archive.open(name) as f:
            shape, dtype = _read_npy_header(f)
            present = archive.getinfo(name).file_size - f.tell()
    except _ZIP_ERRORS as exc:
        raise ValueError(f"cannot read {source} as a .npy array: {exc}; save it again") from exc
    if samples:
        _check_declared(shape, dtype, source)
    elif dtype.kind not in "biufUS":
        raise ValueError(f"{source} holds {dtype} values; expected numbers or strings")
    fix = "save it with np.save as .npy to memory-map it"
    _check_declared_size(shape, dtype, present, source, fix)
    try:
        with archive.open(name) as f:
            return npy_format.read_array(f, allow_pickle=False)
    except _ZIP_ERRORS as exc:
        raise ValueError(f"cannot read {source}: {exc}; the archive is damaged") from exc


def _open_npz(path: Path) -> zipfile.ZipFile:
    source = repr(str(path))
    with open(path, "rb") as f:
        if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
            raise ValueError(
                f"{source} is a .npy array, not a .npz archive: rename it to {path.stem}.npy"
            )
    try:
        return zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        raise ValueError(
            f"cannot read {source} as a .npz archive ({exc}): it is truncated or not a "
            "zip file; save the arrays again with np.savez"
        ) from exc


def npz_splits(path: Path) -> tuple[str, ...]:
    """The splits of a ``.npz`` archive in Keras's layout (``x_train``, ``y_train``,
    ``x_test``, ``y_test``, as ``keras.datasets`` ships MNIST): those of ``"train"`` and
    ``"test"`` it holds samples for; none for other archives."""
    with _open_npz(path) as archive:
        keys = {name.removesuffix(".npy") for name in archive.namelist()}
    return tuple(split for split in ("train", "test") if f"x_{split}" in keys)


def read_npz(path: Path, split: str = "all") -> tuple[np.ndarray, np.ndarray | None]:
    """Read the samples (under ``x``, ``X`` or ``data``) and labels (``y``, ``labels`` or
    ``target``) of a ``.npz`` archive, each member's header checked as by :func:`read_npy`.
    An archive in Keras's layout (:func:`npz_splits`) gives its ``split``: ``x_train``
    and ``y_train``, ``x_test`` and ``y_test``, or for ``"all"`` both, train first."""
    source = repr(str(path))
    with _open_npz(path) as archive:
        members = {name.removesuffix(".npy"): name for name in archive.namelist()}
        keys = list(members)
        present = [part for part in ("train", "test") if f"x_{part}" in keys]
        if present:
            parts = present if split == "all" else [split]
            if split not in ("all", *present):
                raise ValueError(
                    f"{source} has no {split} split (it holds x_{' and x_'.join(present)})"
                )
            labels = {f"x_{part}": f"y_{part}" for part in ("train", "test")}
            return _read_members(archive, members, source, [f"x_{p}" for p in parts], labels)
        data_key = next((k for k in _NPZ_DATA_KEYS if k in keys), None)
        if data_key is None and keys == ["arr_0"]:
            data_key = "arr_0"  # np.savez(path, x) with a single unnamed array
        if data_key is None:
            raise ValueError(
                f"{source} has arrays {keys}; expected the samples under one of "
                f"{list(_NPZ_DATA_KEYS)} (and optional labels under one of "
                f"{list(_NPZ_LABEL_KEYS)}), e.g. np.savez(path, x=X, y=labels), or "
                "x_train, y_train, x_test, y_test as keras.datasets ships them"
            )
        label_key = next((k for k in _NPZ_LABEL_KEYS if k in keys), None)
        labels = {} if label_key is None else {data_key: label_key}
        return _read_members(archive, members, source, [data_key], labels)


def _read_members(
    archive: zipfile.ZipFile,
    members: dict[str, str],
    source: str,
    samples: list[str],
    labels: dict[str, str],
) -> tuple[np.ndarray, np.ndarray | None]:
    """The samples of the arrays ``samples``, one after the other, and their labels (the
    array ``labels[x]`` of samples ``x``) where every one has them. Text labels are coded
    against the classes of all ``labels``, so a class has one code in train and test alike."""

    def read(key: str, as_samples: bool) -> np.ndarray:
        return _npz_array(archive, members[key], f"{source} (array {key!r})", as_samples)

    found = {x: read(y, False) for x, y in labels.items() if y in members}
    texts = [values.reshape(-1) for values in found.values() if values.dtype.kind in "USO"]
    classes = np.unique(np.concatenate(texts)) if texts else None
    arrays, targets = [], []
    for key in samples:
        data = _check_samples(read(key, True), f"{source} (array {key!r})")
        arrays.append(data)
        if key in found:
            where = f"{source} (array {labels[key]!r})"
            targets.append(_as_labels(found[key], data.shape[0], where, classes))
    if len({data.shape[1:] for data in arrays}) > 1:
        shapes = " and ".join(str(data.shape) for data in arrays)
        raise ValueError(f"{source}: x_train and x_test hold samples of other shapes ({shapes})")
    data = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    if len(targets) < len(arrays):
        return data, None
    return data, targets[0] if len(targets) == 1 else np.concatenate(targets)


def _as_labels(
    values: np.ndarray, n: int, source: str, classes: np.ndarray | None = None
) -> np.ndarray:
    """Validate labels and return them as int64, coding non-numeric ones 0..k-1 (their
    places in the sorted ``classes``, or in their own sorted values)."""
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
        if classes is not None:
            return np.searchsorted(classes, values).astype(np.int64)
        _, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64).reshape(-1)
    raise ValueError(f"labels in {source} have unsupported type {values.dtype}")


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
    has_header = not all(_is_number(c) for c in first)
    if label_column is None:
        return None, has_header
    if isinstance(label_column, str) and label_column.strip() in names:
        return names.index(label_column.strip()), True
    if isinstance(label_column, str):
        is_index = label_column.strip().lstrip("+-").isdigit()
    else:
        is_index = isinstance(label_column, int | np.integer) and not isinstance(label_column, bool)
    if not is_index:
        where = f"columns: {names}" if has_header else "it has no header row; give an index"
        raise ValueError(f"label_column {label_column!r} not found in {str(path)!r} ({where})")
    index = int(label_column)
    if not -ncols <= index < ncols:
        raise ValueError(
            f"label_column {label_column!r} is out of range for {str(path)!r}, "
            f"which has {ncols} columns"
        )
    index %= ncols
    others = [c for i, c in enumerate(first) if i != index]
    return index, not all(_is_number(c) for c in others)


def _read_rows(path: Path) -> tuple[list[list[str]], list[int]]:
    """The non-blank rows of a CSV file, with their line numbers."""
    rows: list[list[str]] = []
    lines: list[int] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    rows.append(row)
                    lines.append(reader.line_num)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{str(path)!r} is not UTF-8 text (it holds the byte "
                f"0x{exc.object[exc.start]:02x}); save it as UTF-8 comma-separated numbers"
            ) from None
        except csv.Error as exc:
            raise ValueError(
                f"{str(path)!r} is not a CSV file of numbers: line {reader.line_num}: {exc}; "
                "expected comma-separated numbers, one sample per line"
            ) from None
    return rows, lines


def read_csv(path: Path, label_column: str | int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read the numeric columns of a UTF-8 CSV file as float64 samples, and the labels of
    ``label_column`` (see :func:`neural_kmeans.io.datasets.load_dataset`)."""
    rows, lines = _read_rows(path)
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
    cells = np.array(rows, dtype=object)  # not str: one long field would widen every cell
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
    return _check_samples(data, repr(str(path))), target


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def read_image_folder(folder: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a folder of images, one sub-folder per class (or none: no labels).

    Returns
    -------
    data : ndarray of shape (n, h, w) or (n, 3, h, w) and dtype uint8
        Greyscale, or RGB channels first when any image has colour.
    target : ndarray of shape (n,) and dtype int64, or None
        The index of each image's class, classes in sorted order.

    Raises
    ------
    ValueError
        For no images, mixed sizes, modes other than 8-bit grey or colour, an image that
        cannot be read, or a total beyond :func:`memory_limit`.
    """
    from PIL import Image

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
            with Image.open(f) as img:  # lazy: reads the header only
                size, mode = img.size, img.mode
        except Image.DecompressionBombError as exc:
            message = f"image {str(f)!r} is too large for PIL: {exc} Use smaller images."
            raise ValueError(message) from exc
        except _IMAGE_ERRORS as exc:
            raise ValueError(
                f"cannot read image {str(f)!r}: {exc}; save it again as PNG or JPEG, or remove it"
            ) from exc
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
    what = f"{len(files)} image(s) of {width}x{height} pixels"
    _check_allocation(math.prod(shape), what, repr(str(folder)), "use smaller images")
    return _decode_images(files, shape), target


def _decode_images(files: list[Path], shape: tuple[int, ...]) -> np.ndarray:
    """Decode the images into an array of ``shape`` (colour when it has 4 dimensions)."""
    from PIL import Image

    data = np.empty(shape, dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                if len(shape) == 4:
                    data[i] = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
                else:
                    data[i] = np.asarray(img.convert("L"))
        except _IMAGE_ERRORS as exc:
            raise ValueError(
                f"cannot decode image {str(f)!r}: {exc}; save it again as PNG or JPEG, or remove it"
            ) from exc
    return data
