"""What the commands run on: the data split they fit and score, and the runtime (threads,
device, versions) they record."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neural_kmeans.app.errors import UsageError

#: Below this many values (samples x features) one CPU thread is used by default:
#: tiny tensors gain nothing from threads, and spinning threads on a busy machine
#: can make each step many times slower.
SMALL_DATA_VALUES = 2_000_000


# --------------------------------------------------------------------------- runtime


def resolve_threads(threads: int | None, n_values: int) -> int | None:
    """The CPU threads to use: ``threads`` when given (None or 0: automatic), else 1 for
    training data of under :data:`SMALL_DATA_VALUES` values (samples x features), else
    None to keep the libraries' defaults."""
    if threads:
        return int(threads)
    return 1 if n_values < SMALL_DATA_VALUES else None


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Limit PyTorch's and the BLAS/OpenMP pools' threads within the block (None: no change)."""
    if not threads:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def check_device(device: str) -> str:
    """Validate a ``--device`` value ("auto", "cpu", "cuda", "cuda:N", ...): a UsageError
    when torch does not know the device or CUDA is asked for but absent."""
    if device == "auto":
        return device
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"unknown device {device!r}: use auto, cpu or cuda[:N]") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} asked for, but CUDA is not available here")
    if parsed.type == "cuda" and parsed.index is not None:
        if parsed.index >= torch.cuda.device_count():
            raise UsageError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    return device


def warm_up() -> None:
    """Do the one-off lazy imports of a first fit (torch's optimizers load torch._dynamo,
    about 2 s) so that they are not counted in the first method's wall time."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def versions() -> dict[str, str | None]:
    """Versions of Python and the libraries a result depends on."""

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    import sklearn
    import torch

    from neural_kmeans import __version__

    return {
        "neural_kmeans": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "matplotlib": version("matplotlib"),
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------- data


@dataclass
class DataSplit:
    """The samples a protocol fits on (``x_train``, ``y_train``: the ``fit_split``,
    ``"train"`` or ``"all"``) and scores with (``x_test``, ``y_test``: the ``test_split``,
    ``"test"`` or None), with the (h, w) or (c, h, w) ``image_shape`` of image samples.
    ``name``: the data set's name, or the path it was read from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None
    fit_split: str = "all"
    test_split: str | None = None
    _rows: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def scale(self) -> float:
        """Factor from the stored values to the units the models see (1/255 for uint8)."""
        return 1.0 / 255.0 if self.x_train.dtype == np.uint8 else 1.0

    @property
    def n_features(self) -> int:
        """Features of one sample (h·w·c for images)."""
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def n_classes(self) -> int | None:
        """Number of distinct training labels, or None without labels."""
        if self.y_train is None:
            return None
        return int(np.unique(self.y_train).size)

    @property
    def split(self) -> dict[str, str | None]:
        """``{"fit": ..., "test": ...}`` as written in the results."""
        return {"fit": self.fit_split, "test": self.test_split}

    @property
    def score_split(self) -> str:
        """The split that tables and sweeps report: test when there is one, else train."""
        return "test" if self.x_test is not None else "train"

    def rows(self, which: str) -> np.ndarray:
        """Samples of ``"train"`` or ``"test"`` flattened to float32 rows and scaled."""
        if which not in self._rows:
            x = self.x_train if which == "train" else self.x_test
            if x is None:
                raise ValueError(f"{self.name} has no {which} split")
            rows = np.asarray(x).reshape(x.shape[0], -1)
            if rows.dtype == np.uint8:
                rows = rows.astype(np.float32) / np.float32(255.0)
            elif rows.dtype != np.float32 and rows.dtype != np.float64:
                rows = rows.astype(np.float32)
            self._rows[which] = rows
        return self._rows[which]

    def value_range(self) -> tuple[float, float]:
        """Smallest and largest training value, in the scaled units."""
        x = np.asarray(self.x_train)
        return float(x.min()) * self.scale, float(x.max()) * self.scale


def _subset(
    x: np.ndarray, y: np.ndarray | None, size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    if size is None or size >= x.shape[0]:
        return x, y
    index = np.sort(np.random.default_rng(seed).choice(x.shape[0], size, replace=False))
    return np.asarray(x[index]), None if y is None else y[index]


def load_data(
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    label_column: str | None = None,
    n_samples: int | None = None,
    noise: float | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
) -> DataSplit:
    """Load a data set's training split (and its test split when it has one).

    ``dataset``: a name of :data:`neural_kmeans.io.datasets.DATASET_NAMES` or a path;
    ``data_dir``: where to look for MNIST-like files first; ``label_column``: a CSV's
    (name or index); ``n_samples``, ``noise``: of a toy data set (moons, circles, blobs);
    ``train_subset``, ``test_subset``: keep this many samples of each split, drawn at
    random with ``subset_seed``. Raises a UsageError with the loader's message for an
    unknown name, a missing or unreadable file, or data that cannot be clustered.
    """
    from neural_kmeans.io.datasets import has_split, load_dataset

    split = has_split(dataset)
    options: dict[str, Any] = {"n_samples": n_samples, "noise": noise}
    if label_column is not None:
        options["label_column"] = label_column
    try:
        train = load_dataset(dataset, "train" if split else "all", data_dir, **options)
        test = load_dataset(dataset, "test", data_dir, **options) if split else None
    except (ValueError, OSError, TypeError) as error:
        raise UsageError(_one_line(error)) from error
    x_train, y_train = _subset(train.data, train.target, train_subset, subset_seed)
    x_test = y_test = None
    if test is not None:
        x_test, y_test = _subset(test.data, test.target, test_subset, subset_seed)
    if x_train.dtype.kind not in "biuf":
        raise UsageError(f"{dataset}: samples of dtype {x_train.dtype} are not numbers")
    if np.issubdtype(x_train.dtype, np.floating) and not np.all(np.isfinite(x_train)):
        raise UsageError(f"{dataset}: the samples contain NaN or infinite values")
    return DataSplit(
        name=train.name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        image_shape=train.image_shape,
        fit_split=train.split,
        test_split=None if test is None else test.split,
    )


def resolve_clusters(data: DataSplit, n_clusters: int | None) -> int:
    """K: the one asked for, else the number of classes; a UsageError when it is missing
    for unlabelled data, below 1 or above the number of samples."""
    n = data.x_train.shape[0]
    if n_clusters is None:
        if data.n_classes is None:
            raise UsageError(f"{data.name} has no labels: give the number of clusters (--clusters)")
        n_clusters = data.n_classes
    if n_clusters < 1 or n_clusters > n:
        raise UsageError(
            f"--clusters {n_clusters} is out of range: {data.name} has {n} training samples, "
            f"so K must be between 1 and {n}"
        )
    return int(n_clusters)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
