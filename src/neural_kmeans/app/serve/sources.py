"""The data a page clusters: toy sets, digits, MNIST-like subsets found on this machine
(never downloaded by the server), and uploads, all read and checked by the command
line's loader (:func:`neural_kmeans.app.data.load_data`); plus the points a page adds to
or removes from 2-D data."""

from __future__ import annotations

import functools
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from neural_kmeans.app.data import DataSplit, load_data
from neural_kmeans.app.errors import UsageError
from neural_kmeans.app.serve.params import (
    IMAGE_SETS,
    TOY_SETS,
    UPLOAD_SUFFIXES,
    Limits,
    SourceSpec,
)

#: Samples of an MNIST-like subset when the page names no size.
DEFAULT_SUBSET = 10_000
#: Samples of a toy set when the page names no size.
DEFAULT_TOY_SAMPLES = 1000
#: Margin around the samples of the 2-D view, as a fraction of their extent.
VIEW_PAD = 0.08


@dataclass
class PlaygroundData:
    """The samples of one page and how to show them.

    Attributes
    ----------
    split : DataSplit
        The samples fitted (``x_train``); ``y_train`` holds -1 for points added by hand.
    mode : str
        How the page draws the data: ``"2d"`` (points and regions), ``"images"``, or
        ``"rows"`` (seen through PCA).
    source : dict
        What was loaded (for results.json): kind, name, sizes, seed, ``edited``.
    points : ndarray of shape (n, 2) or None
        What the page draws: the samples (2-D) or their PCA projection (rows).
    view : tuple of 4 floats or None
        ``(x0, x1, y0, y1)`` of the 2-D view (fixed while points are edited).
    image_shape : tuple of int or None
        (h, w) or (c, h, w) of image samples.
    projection : (mean, components) or None
        The PCA of rows mode, applied to centroids too.
    """

    split: DataSplit
    mode: str
    source: dict[str, Any]
    points: np.ndarray | None = None
    view: tuple[float, float, float, float] | None = None
    image_shape: tuple[int, ...] | None = None
    projection: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def x(self) -> np.ndarray:
        """The samples the estimator fits."""
        return self.split.x_train

    @property
    def labels(self) -> np.ndarray | None:
        """Known classes, -1 where unknown; None without labels."""
        return self.split.y_train

    @property
    def labelled(self) -> np.ndarray | None:
        """Mask of the samples with a known class (None without labels or with none known)."""
        if self.labels is None:
            return None
        mask = self.labels >= 0
        return mask if mask.any() else None

    def project(self, centroids: np.ndarray) -> np.ndarray:
        """Centroids (K, d), input units, as the page draws them: (K, 2)."""
        if self.mode == "2d":
            return np.asarray(centroids, dtype=np.float64)
        if self.projection is None:
            raise ValueError("images have no projection")
        mean, components = self.projection
        return (np.asarray(centroids, dtype=np.float64) - mean) @ components.T

    def summary(self) -> dict[str, Any]:
        """What the page shows about the data."""
        labelled = self.labelled
        classes = None if labelled is None else np.unique(self.labels[labelled])
        return {
            "name": self.split.name,
            "mode": self.mode,
            "n_samples": int(self.x.shape[0]),
            "n_features": self.split.n_features,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "n_classes": None if classes is None else int(classes.size),
            "n_labelled": 0 if labelled is None else int(labelled.sum()),
            "editable": self.mode == "2d",
            "edited": bool(self.source.get("edited")),
            "view": None if self.view is None else list(self.view),
        }


# --------------------------------------------------------------------------- what is here


def available_sets(data_dir: str | None) -> tuple[str, ...]:
    """The named data sets a page may choose here: MNIST-like ones when their training files
    lie in one of the folders searched (no download, no hash: the load checks the files)."""
    from neural_kmeans.io.download import IDX_FILES, search_locations

    def present(name: str) -> bool:
        return any(
            all(
                (folder / f"{f}.gz").is_file() or (folder / f).is_file() for f in IDX_FILES["train"]
            )
            for folder, _ in search_locations(name, data_dir)
        )

    return (*TOY_SETS, "digits", *(n for n in IMAGE_SETS[1:] if present(n)))


@functools.lru_cache(maxsize=2)
def _idx_train(name: str, data_dir: str | None) -> DataSplit:
    """The whole training split of an MNIST-like set (kept: subsets are drawn from it)."""
    from neural_kmeans.io.datasets import load_dataset

    try:
        train = load_dataset(name, "train", data_dir, download=False)
    except (ValueError, OSError) as error:
        raise UsageError(" ".join(str(error).split())) from None
    return DataSplit(
        name=train.name,
        x_train=np.asarray(train.data),
        y_train=train.target,
        image_shape=train.image_shape,
        fit_split="train",
    )


# --------------------------------------------------------------------------- loading


def load_source(spec: SourceSpec, data_dir: str | None, limits: Limits) -> PlaygroundData:
    """The data of a named set: a toy set, digits or an MNIST-like subset.

    Raises
    ------
    UsageError
        For data that cannot be read (the command line's messages).
    """
    if spec.kind == "toy":
        from neural_kmeans.io.datasets import load_dataset

        n = spec.n_samples or DEFAULT_TOY_SAMPLES
        toy = load_dataset(spec.name, "all", n_samples=n, noise=spec.noise, random_state=spec.seed)
        split = DataSplit(name=toy.name, x_train=toy.data, y_train=toy.target)
        source = {**asdict(spec), "n_samples": n}
    elif spec.name == "digits":
        split = load_data("digits")
        source = asdict(spec)
    else:
        full = _idx_train(spec.name, data_dir)
        n = min(spec.n_samples or DEFAULT_SUBSET, full.x_train.shape[0])
        index = np.sort(
            np.random.default_rng(spec.seed).choice(full.x_train.shape[0], n, replace=False)
        )
        split = _with_samples(full, full.x_train[index], full.y_train[index])
        source = {**asdict(spec), "n_samples": n, "split": "train"}
    return prepare(split, source, limits)


def _upload_name(filename: str) -> str:
    """A file name safe to show: its last part, plain characters only."""
    base = re.split(r"[\\/]", str(filename))[-1]
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip() or "upload"
    return base[:80]


def load_upload(
    content: bytes, filename: str, label_column: str | None, limits: Limits
) -> PlaygroundData:
    """An uploaded .npy, .npz or .csv file, read and checked by the command line's loader.

    The file lives in a temporary folder only while it is read; messages name the
    uploaded file, never a path on the server.

    Raises
    ------
    UsageError
        For a file that is too big, of another type, unreadable or not clusterable.
    """
    name = _upload_name(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise UsageError(
            f"{name}: unsupported file type {suffix or '(no extension)'!r}; upload a .npy, "
            ".npz or .csv file"
        )
    if len(content) > limits.max_upload_bytes:
        raise UsageError(
            f"{name}: {len(content):,} bytes is over the limit of {limits.max_upload_bytes:,}"
        )
    if not content:
        raise UsageError(f"{name}: the file is empty")
    with tempfile.TemporaryDirectory(prefix="neural-kmeans-upload-") as folder:
        path = os.path.join(folder, f"upload{suffix}")
        with open(path, "wb") as file:
            file.write(content)
        try:
            split = load_data(path, label_column=label_column or None)
            labels = None if split.y_train is None else np.array(split.y_train)
            # out of the memory map before the file goes
            split = replace(_with_samples(split, np.array(split.x_train), labels), name=name)
        except UsageError as error:
            raise UsageError(str(error).replace(path, name).replace(folder, "")) from None
    return prepare(split, {"kind": "upload", "name": name, "label_column": label_column}, limits)


# --------------------------------------------------------------------------- shaping


def _with_samples(split: DataSplit, x: np.ndarray, y: np.ndarray | None) -> DataSplit:
    """``split`` holding other samples (and forgetting the rows it cached)."""
    return replace(split, x_train=x, y_train=y, _rows={})


def _view(points: np.ndarray) -> tuple[float, float, float, float]:
    low, high = points.min(axis=0).astype(float), points.max(axis=0).astype(float)
    pad = VIEW_PAD * np.maximum(high - low, 1e-6)
    return (low[0] - pad[0], high[0] + pad[0], low[1] - pad[1], high[1] + pad[1])


def _image_shape(split: DataSplit) -> tuple[int, ...] | None:
    """The images' shape, as the estimator reads them (784 features: 28x28)."""
    if split.image_shape is not None:
        return tuple(int(s) for s in split.image_shape)
    if split.x_train.ndim == 2 and split.x_train.shape[1] == 28 * 28:
        return (28, 28)
    return None


def prepare(split: DataSplit, source: dict[str, Any], limits: Limits) -> PlaygroundData:
    """Check the size of ``split`` and choose how the page shows it.

    Raises
    ------
    UsageError
        For more samples than the playground takes, or samples of one feature.
    """
    n = int(split.x_train.shape[0])
    if n > limits.max_samples:
        raise UsageError(
            f"{split.name} has {n:,} samples; the playground takes at most "
            f"{limits.max_samples:,} (the command line takes any number)"
        )
    if split.y_train is not None:
        split = replace(split, y_train=np.asarray(split.y_train, dtype=np.int64))
    shape = _image_shape(split)
    if shape is not None:
        return PlaygroundData(split, "images", source, image_shape=shape)
    rows = split.rows("train")
    if rows.shape[1] == 2:
        points = np.ascontiguousarray(rows, dtype=np.float32)
        return PlaygroundData(split, "2d", source, points=points, view=_view(points))
    if rows.shape[1] < 2:
        raise UsageError(
            f"{split.name} has samples of {rows.shape[1]} feature; the playground draws "
            "2-D points, images, or rows of more features (projected); use the command line"
        )
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(rows)
    points = pca.transform(rows).astype(np.float32)
    projection = (pca.mean_.astype(np.float64), pca.components_.astype(np.float64))
    return PlaygroundData(
        split, "rows", source, points=points, view=_view(points), projection=projection
    )


def edit_points(data: PlaygroundData, add: Any, remove: Any, limits: Limits) -> PlaygroundData:
    """A copy of 2-D ``data`` with a point added at ``add`` = [x, y] (its class unknown) or
    the point nearest to ``remove`` = [x, y, radius] taken away (none when none is within
    the radius).

    Raises
    ------
    UsageError
        For data that is not 2-D, bad coordinates, or more points than the limit.
    """
    if data.mode != "2d":
        raise UsageError("points can be added or removed on 2-D data only")
    points = data.points
    labels = data.labels
    if add is not None:
        where = _coordinates(add, 2, "add")
        if points.shape[0] >= limits.max_samples:
            raise UsageError(f"at most {limits.max_samples:,} points in the playground")
        points = np.vstack([points, np.asarray(where, dtype=np.float32)[None, :]])
        if labels is not None:
            labels = np.append(labels, -1)
    elif remove is not None:
        x, y, radius = _coordinates(remove, 3, "remove")
        distance = np.hypot(points[:, 0] - x, points[:, 1] - y)
        nearest = int(distance.argmin())
        if distance[nearest] > radius:
            return data
        if points.shape[0] <= 1:
            raise UsageError("the last point cannot be removed")
        keep = np.arange(points.shape[0]) != nearest
        points = points[keep]
        labels = None if labels is None else labels[keep]
    else:
        raise UsageError("an edit adds or removes a point")
    split = _with_samples(data.split, points, labels)
    return replace(data, split=split, points=points, source={**data.source, "edited": True})


def _coordinates(value: Any, count: int, what: str) -> list[float]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != count
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not all(np.isfinite(v) for v in value)
    ):
        raise UsageError(f"{what}: expected {count} finite numbers, got {value!r}")
    return [float(v) for v in value]
