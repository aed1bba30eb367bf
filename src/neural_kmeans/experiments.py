"""The protocols behind the command line: fit, score, compare with K-means, sweep K.

Everything here returns plain Python data (dicts of floats, lists, arrays) and
writes nothing; :mod:`neural_kmeans.cli` turns it into files and
:mod:`neural_kmeans.plotting` / :mod:`neural_kmeans.animation` into figures. No
function here imports matplotlib.

The protocol of one run
-----------------------
* The model is fitted on the training split (``"train"`` for MNIST and
  Fashion-MNIST, all the samples for the other sources).
* Train scores come from the fitted labels (``labels_``); test scores, when the
  data set has a test split, from ``predict`` on the test samples.
* The baseline is scikit-learn's ``KMeans(n_clusters=K, n_init=1, max_iter=...,
  random_state=seed)`` fitted on the same samples, flattened and scaled the same
  way (uint8 divided by 255), scored the same way (``labels_``, ``predict``).
* ``inertia`` is the sum of squared distances to the assigned centroids, in the
  scaled units both methods see (uint8 data divided by 255; other data as is).
* ``seconds`` is the wall time of ``fit`` alone (no scoring, no figures).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neural_kmeans.metrics import METRIC_NAMES, evaluate

__all__ = [
    "KMEANS",
    "NEURAL",
    "NOTEBOOK_REFERENCE",
    "DataSplit",
    "MethodRun",
    "NeuralConfig",
    "Reporter",
    "Trajectory",
    "UsageError",
    "available_methods",
    "check_device",
    "check_methods",
    "compare_methods",
    "fit_kmeans",
    "fit_method",
    "fit_neural",
    "load_data",
    "reproduce_protocol",
    "resolve_clusters",
    "resolve_threads",
    "run_results",
    "summarize",
    "sweep_clusters",
    "thread_limit",
    "trace_2d",
    "versions",
    "warm_up",
]

#: Name of the neural method in results (``"neural-kmeans:<network>"`` in comparisons).
NEURAL = "neural-kmeans"
#: Name of scikit-learn's K-means in results.
KMEANS = "kmeans"
#: The method name of ``NeuralKMeans(features="learned")`` in ``compare``.
LEARNED = f"{NEURAL}:learned"

#: The seed notebook's published test scores on MNIST (K=10).
NOTEBOOK_REFERENCE: dict[str, dict[str, float]] = {
    "kmeans": {"rand": 0.880, "purity": 0.594},
    "cnn": {"rand": 0.851, "purity": 0.492},
}

#: Below this many values (samples x features) one CPU thread is used by default:
#: tiny tensors gain nothing from threads, and spinning threads on a busy machine
#: can make each step many times slower.
SMALL_DATA_VALUES = 2_000_000


class UsageError(Exception):
    """An error the user caused and can fix: bad option value, unknown data set, bad file."""


# --------------------------------------------------------------------------- runtime


def resolve_threads(threads: int | None, n_values: int) -> int | None:
    """The number of CPU threads to use, or None to keep the libraries' defaults.

    Parameters
    ----------
    threads : int or None
        What the user asked for; None (or 0) means automatic.
    n_values : int
        Size of the training data (samples x features).

    Returns
    -------
    int or None
        ``threads`` when given; 1 for data under :data:`SMALL_DATA_VALUES` values;
        otherwise None.
    """
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
    """Validate a ``--device`` value ("auto", "cpu", "cuda", "cuda:N", ...).

    Raises
    ------
    UsageError
        When torch does not know the device or CUDA is asked for but absent.
    """
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
    """The samples a protocol fits on and scores with.

    Attributes
    ----------
    name : str
        Data set name (or the path it was read from).
    x_train, y_train : ndarray, ndarray or None
        Samples the models are fitted on and their labels.
    x_test, y_test : ndarray or None
        The test split, for data sets that have one.
    image_shape : tuple of int or None
        (h, w) or (c, h, w) of image samples.
    fit_split : str
        ``"train"`` or ``"all"``.
    test_split : str or None
        ``"test"`` or None.
    """

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

    Parameters
    ----------
    dataset : str
        A name of :data:`neural_kmeans.datasets.DATASET_NAMES` or a path.
    data_dir : path-like, optional
        Where to look for MNIST-like files first.
    label_column : str, optional
        Label column of a CSV file (name or index).
    n_samples, noise : optional
        Size and noise of a toy data set (moons, circles, blobs).
    train_subset, test_subset : int, optional
        Keep this many samples of each split, drawn at random with ``subset_seed``.

    Returns
    -------
    DataSplit

    Raises
    ------
    UsageError
        With the loader's message, for an unknown name, a missing or unreadable file,
        or data that cannot be clustered.
    """
    from neural_kmeans.datasets import has_split, load_dataset

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
    """K: the one asked for, else the number of classes; checked against the data.

    Raises
    ------
    UsageError
        When K is missing for unlabelled data, below 1 or above the number of samples.
    """
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


# --------------------------------------------------------------------------- fitting


@dataclass
class NeuralConfig:
    """The estimator's options that the command line exposes."""

    network: str = "auto"
    init: str = "k-means++"
    max_iter: int = 20
    steps_per_iter: int = 10
    learning_rate: float | None = None
    tol: float = 0.0
    batch_size: int | None = None
    device: str = "auto"
    features: str = "pixels"
    checkpoint_dir: str | None = None
    resume: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict."""
        return dict(self.__dict__)


#: ``callback(iteration, record, model) -> stop?``, as the estimator takes it.
Callback = Callable[[int, dict, Any], Any]


class Reporter:
    """Hooks the protocols call while they run; this base class stays silent.

    The command line subclasses it to show progress bars and log lines.
    """

    def start_fit(self, label: str, max_iter: int) -> Callback | None:
        """A fit of ``label`` begins; return a callback for its iterations, or None.

        ``max_iter`` is 0 for a method that reports no iterations (scikit-learn's KMeans).
        """
        return None

    def end_fit(self, label: str, run: MethodRun | None) -> None:
        """A fit of ``label`` ended with ``run`` (None when there is no scored run)."""

    def message(self, text: str) -> None:
        """A line of news about the protocol."""


@dataclass
class MethodRun:
    """One fitted and scored method.

    Attributes
    ----------
    method : str
        ``"neural-kmeans"``, ``"neural-kmeans:<network>"`` or ``"kmeans"``.
    seed, n_clusters : int
    train_labels, test_labels : ndarray, ndarray or None
    train, test : dict or None
        Metrics (acc, nmi, ari, rand, purity), or None without labels or split.
    seconds : float
        Wall time of the fit.
    n_iter : int
    inertia : float
        In the scaled units (see the module's notes).
    model : estimator
        The fitted NeuralKMeans or KMeans.
    """

    method: str
    seed: int
    n_clusters: int
    train_labels: np.ndarray
    test_labels: np.ndarray | None
    train: dict[str, float] | None
    test: dict[str, float] | None
    seconds: float
    n_iter: int
    inertia: float
    model: Any = field(repr=False, default=None)

    def to_dict(self) -> dict[str, Any]:
        """The ``RUN`` record of ``results.json``."""
        return {
            "train": self.train,
            "test": self.test,
            "seconds": self.seconds,
            "n_iter": self.n_iter,
            "inertia": self.inertia,
        }


def _score(y: np.ndarray | None, labels: np.ndarray | None) -> dict[str, float] | None:
    if y is None or labels is None:
        return None
    return evaluate(y, labels)


def _estimator(
    n_clusters: int, seed: int, config: NeuralConfig, *, init: Any = None, **options: Any
) -> Any:
    """A ``NeuralKMeans`` set up from ``config`` (``init``, when given, in place of
    ``config.init``) and the further estimator ``options``."""
    from neural_kmeans.estimator import NeuralKMeans

    return NeuralKMeans(
        n_clusters,
        network=config.network,
        init=config.init if init is None else init,
        steps_per_iter=config.steps_per_iter,
        learning_rate=config.learning_rate,
        max_iter=config.max_iter,
        tol=config.tol,
        batch_size=config.batch_size,
        device=config.device,
        features=config.features,
        random_state=seed,
        **options,
    )


def fit_neural(
    data: DataSplit,
    n_clusters: int,
    seed: int,
    config: NeuralConfig,
    *,
    record_centroids: bool = False,
    callbacks: Sequence[Callback] = (),
    method: str = NEURAL,
) -> MethodRun:
    """Fit ``NeuralKMeans`` on the training split and score it.

    Parameters
    ----------
    data : DataSplit
    n_clusters, seed : int
    config : NeuralConfig
    record_centroids : bool
        Keep each iteration's centroids in ``model.history_``.
    callbacks : sequence of callables
        Passed to the estimator.
    method : str
        Name of the run.

    Returns
    -------
    MethodRun
    """
    warm_up()
    model = _estimator(
        n_clusters,
        seed,
        config,
        record_centroids=record_centroids,
        callbacks=list(callbacks) or None,
        checkpoint_dir=config.checkpoint_dir,
    )
    started = time.perf_counter()
    model.fit(data.x_train, resume=config.resume)
    seconds = time.perf_counter() - started
    model.callbacks = None  # the fitted model keeps no reference to progress bars
    test_labels = None if data.x_test is None else np.asarray(model.predict(data.x_test))
    return MethodRun(
        method=method,
        seed=seed,
        n_clusters=n_clusters,
        train_labels=np.asarray(model.labels_),
        test_labels=test_labels,
        train=_score(data.y_train, model.labels_),
        test=_score(data.y_test, test_labels),
        seconds=seconds,
        n_iter=int(model.n_iter_),
        inertia=float(model.inertia_) * data.scale**2,
        model=model,
    )


def fit_kmeans(data: DataSplit, n_clusters: int, seed: int, max_iter: int) -> MethodRun:
    """Fit scikit-learn's ``KMeans(n_init=1)`` on the same (scaled, flat) samples and score it."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=n_clusters, n_init=1, max_iter=max_iter, random_state=seed)
    rows = data.rows("train")
    started = time.perf_counter()
    model.fit(rows)
    seconds = time.perf_counter() - started
    test_labels = None if data.x_test is None else model.predict(data.rows("test"))
    return MethodRun(
        method=KMEANS,
        seed=seed,
        n_clusters=n_clusters,
        train_labels=model.labels_,
        test_labels=test_labels,
        train=_score(data.y_train, model.labels_),
        test=_score(data.y_test, test_labels),
        seconds=seconds,
        n_iter=int(model.n_iter_),
        inertia=float(model.inertia_),
        model=model,
    )


def run_results(
    data: DataSplit,
    n_clusters: int,
    runs: dict[str, MethodRun],
    config: dict[str, Any],
) -> dict[str, Any]:
    """The ``results.json`` document of one run.

    Returns
    -------
    dict
        ``{"dataset", "n_clusters", "split": {"fit", "test"}, "methods": {name: RUN},
        "config", "versions"}``.
    """
    return {
        "dataset": data.name,
        "n_clusters": n_clusters,
        "split": data.split,
        "methods": {name: run.to_dict() for name, run in runs.items()},
        "config": config,
        "versions": versions(),
    }


# --------------------------------------------------------------------------- compare, sweep


def available_methods(data: DataSplit) -> list[str]:
    """Methods that apply to ``data``: neural-kmeans with each network, then kmeans.

    The CNN is offered only for images of at least 8x8 pixels (or rows of 784 features,
    which the estimator reads as 28x28 images).
    """
    from neural_kmeans.networks import NETWORK_NAMES

    shape = data.image_shape
    # 784 features are read as 28x28 images by the estimator
    images = (shape is not None and min(shape[-2:]) >= 8) or (
        shape is None and data.n_features == 784
    )
    networks = [n for n in NETWORK_NAMES if n != "auto" and (n != "cnn" or images)]
    return [f"{NEURAL}:{n}" for n in networks] + [KMEANS]


def fit_method(
    method: str,
    data: DataSplit,
    n_clusters: int,
    seed: int,
    config: NeuralConfig,
    *,
    kmeans_max_iter: int,
    reporter: Reporter | None = None,
    record_centroids: bool = False,
) -> MethodRun:
    """Fit one named method (``"kmeans"``, ``"neural-kmeans"`` or ``"neural-kmeans:<net>"``).

    Raises
    ------
    UsageError
        For an unknown method name.
    """
    reporter = reporter or Reporter()
    label = f"{method} K={n_clusters} seed={seed}"
    if method == KMEANS:
        reporter.start_fit(label, 0)
        run = fit_kmeans(data, n_clusters, seed, kmeans_max_iter)
    elif method == NEURAL or method.startswith(f"{NEURAL}:"):
        if method == LEARNED:
            config = NeuralConfig(**{**config.as_dict(), "features": "learned"})
        elif ":" in method:
            network = method.split(":", 1)[1]
            config = NeuralConfig(**{**config.as_dict(), "network": network, "features": "pixels"})
        callback = reporter.start_fit(label, _max_iter(config))
        run = fit_neural(
            data,
            n_clusters,
            seed,
            config,
            record_centroids=record_centroids,
            callbacks=[callback] if callback else (),
            method=method,
        )
    else:
        raise UsageError(f"unknown method {method!r}; use kmeans or neural-kmeans:<network>")
    reporter.end_fit(label, run)
    return run


def _max_iter(config: NeuralConfig) -> int:
    """The most iterations a fit with ``config`` may run (for progress bars)."""
    if config.features == "learned":
        from neural_kmeans.self_labelling import LearnedParams

        return LearnedParams().max_iter
    return config.max_iter


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std}


def summarize(runs: Sequence[MethodRun]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of every metric, seconds, n_iter, inertia.

    Returns
    -------
    dict
        ``{"train": {metric: {"mean", "std"}} or None, "test": ... or None,
        "seconds": {"mean", "std"}, "n_iter": ..., "inertia": ..., "n_runs": int}``.
    """
    summary: dict[str, Any] = {}
    for split in ("train", "test"):
        scores = [getattr(run, split) for run in runs]
        if any(s is None for s in scores):
            summary[split] = None
        else:
            summary[split] = {m: _mean_std([s[m] for s in scores]) for m in METRIC_NAMES}
    for key in ("seconds", "n_iter", "inertia"):
        summary[key] = _mean_std([getattr(run, key) for run in runs])
    summary["n_runs"] = len(runs)
    return summary


def _history_record(record: dict, scale: float) -> dict[str, Any]:
    """A history record without its arrays, JSON-ready, inertia in the scaled units."""
    keys = ("iteration", "loss", "changed", "seconds")
    return {**{key: record[key] for key in keys}, "inertia": record["inertia"] * scale**2}


def _run_record(run: MethodRun) -> dict[str, Any]:
    return {"seed": run.seed, "n_clusters": run.n_clusters, **run.to_dict()}


def check_methods(data: DataSplit, methods: Sequence[str]) -> list[str]:
    """The distinct ``methods``, after checking that each applies to ``data``.

    Raises
    ------
    UsageError
        For an unknown method or one that does not fit the data (the CNN on rows).
    """
    known = available_methods(data)
    extra = [f"{NEURAL}:auto", NEURAL, LEARNED]
    for method in methods:
        if method not in known and method not in extra:
            raise UsageError(
                f"method {method!r} does not apply to {data.name}; choose from {', '.join(known)}"
            )
    return list(dict.fromkeys(methods))


def _fit_seeds(
    method: str,
    data: DataSplit,
    n_clusters: int,
    seeds: Sequence[int],
    config: NeuralConfig,
    kmeans_max_iter: int,
    reporter: Reporter | None,
) -> dict[str, Any]:
    """``{"runs": [RUN + seed], "summary": summarize(...)}`` of ``method`` fitted with each seed."""
    runs = [
        fit_method(
            method,
            data,
            n_clusters,
            seed,
            config,
            kmeans_max_iter=kmeans_max_iter,
            reporter=reporter,
        )
        for seed in seeds
    ]
    return {"runs": [_run_record(run) for run in runs], "summary": summarize(runs)}


def compare_methods(
    data: DataSplit,
    n_clusters: int,
    methods: Sequence[str],
    seeds: Sequence[int],
    config: NeuralConfig,
    *,
    kmeans_max_iter: int,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Fit every method with every seed; summarize each method over the seeds.

    Returns
    -------
    dict
        ``{"dataset", "n_clusters", "split", "score_split", "seeds",
        "methods": {method: {"runs": [RUN + seed], "summary": summarize(...)}}}``.
    """
    methods = check_methods(data, methods)
    document: dict[str, Any] = {
        "dataset": data.name,
        "n_clusters": n_clusters,
        "split": data.split,
        "score_split": data.score_split,
        "seeds": list(seeds),
        "methods": {},
    }
    for method in methods:
        document["methods"][method] = _fit_seeds(
            method, data, n_clusters, seeds, config, kmeans_max_iter, reporter
        )
    return document


def sweep_clusters(
    data: DataSplit,
    clusters: Sequence[int],
    methods: Sequence[str],
    seeds: Sequence[int],
    config: NeuralConfig,
    *,
    kmeans_max_iter: int,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Every method at every K (each over the seeds).

    Returns
    -------
    dict
        ``{"dataset", "split", "score_split", "clusters", "seeds",
        "methods": {method: [{"n_clusters", "runs", "summary"} per K]}}``.
    """
    for k in clusters:
        resolve_clusters(data, k)
    methods = check_methods(data, methods)
    document: dict[str, Any] = {
        "dataset": data.name,
        "split": data.split,
        "score_split": data.score_split,
        "clusters": list(clusters),
        "seeds": list(seeds),
        "methods": {method: [] for method in methods},
    }
    for k in clusters:
        for method in methods:
            entry = _fit_seeds(method, data, k, seeds, config, kmeans_max_iter, reporter)
            document["methods"][method].append({"n_clusters": k, **entry})
    return document


# --------------------------------------------------------------------------- reproduce

#: The seed notebook's settings: random initial centroids, 20 iterations, the CNN.
REPRODUCE_VARIANTS: dict[str, int] = {"cnn-1-step": 1, "cnn-10-steps": 10}


def reproduce_protocol(
    data: DataSplit,
    *,
    seeds: Sequence[int],
    clusters: Sequence[int],
    max_iter: int = 20,
    kmeans_max_iter: int = 30,
    device: str = "auto",
    n_clusters: int = 10,
    reporter: Reporter | None = None,
) -> tuple[dict[str, Any], dict[str, MethodRun]]:
    """The seed notebook's protocol.

    For every seed: K-means (``max_iter=kmeans_max_iter``), then the CNN loop with
    ``init="random"`` for ``max_iter`` iterations with one Adam step per iteration
    (the notebook's code) and with ten (what its figures reflect); each fitted on
    the training split and scored on the test split. Then the K sweep with K-means
    and the 10-step CNN, with the first seed only.

    Returns
    -------
    document : dict
        ``{"dataset", "split", "n_clusters", "seeds", "methods": {name: {"runs",
        "summary"}}, "sweep": sweep document or None, "reference": NOTEBOOK_REFERENCE,
        "protocol": {...}}``.
    first_runs : dict of MethodRun
        The first seed's run of each method (with centroids recorded), for figures.
    """
    reporter = reporter or Reporter()
    resolve_clusters(data, n_clusters)
    if clusters:
        for k in clusters:
            resolve_clusters(data, k)
    base = NeuralConfig(network="cnn", init="random", max_iter=max_iter, device=device)
    configs = {
        name: NeuralConfig(**{**base.as_dict(), "steps_per_iter": steps})
        for name, steps in REPRODUCE_VARIANTS.items()
    }
    runs: dict[str, list[MethodRun]] = {KMEANS: [], **{name: [] for name in configs}}
    first: dict[str, MethodRun] = {}
    for index, seed in enumerate(seeds):
        run = fit_method(
            KMEANS, data, n_clusters, seed, base, kmeans_max_iter=kmeans_max_iter, reporter=reporter
        )
        runs[KMEANS].append(run)
        if index == 0:
            first[KMEANS] = run
        for name, config in configs.items():
            callback = reporter.start_fit(f"{name} K={n_clusters} seed={seed}", max_iter)
            run = fit_neural(
                data,
                n_clusters,
                seed,
                config,
                record_centroids=index == 0,
                callbacks=[callback] if callback else (),
                method=name,
            )
            reporter.end_fit(f"{name} K={n_clusters} seed={seed}", run)
            runs[name].append(run)
            if index == 0:
                first[name] = run
            else:
                run.model = None
    sweep = None
    if clusters:
        sweep = sweep_clusters(
            data,
            clusters,
            [KMEANS, f"{NEURAL}:cnn"],
            list(seeds)[:1],
            configs["cnn-10-steps"],
            kmeans_max_iter=kmeans_max_iter,
            reporter=reporter,
        )
    document = {
        "dataset": data.name,
        "split": data.split,
        "n_train": int(data.x_train.shape[0]),
        "n_test": None if data.x_test is None else int(data.x_test.shape[0]),
        "n_clusters": n_clusters,
        "seeds": list(seeds),
        "methods": {
            name: {"runs": [_run_record(r) for r in method_runs], "summary": summarize(method_runs)}
            for name, method_runs in runs.items()
        },
        "histories": {
            name: [_history_record(record, data.scale) for record in run.model.history_]
            for name, run in first.items()
            if name != KMEANS
        },
        "sweep": sweep,
        "reference": NOTEBOOK_REFERENCE,
        "protocol": {
            "kmeans": {"n_init": 1, "init": "k-means++", "max_iter": kmeans_max_iter},
            "cnn": {
                "init": "random",
                "max_iter": max_iter,
                "optimizer": "adam",
                "learning_rate": None,
                "steps_per_iter": dict(REPRODUCE_VARIANTS),
            },
            "sweep": {
                "clusters": list(clusters),
                "seed": seeds[0] if clusters else None,
                "methods": [KMEANS, "cnn-10-steps"],
            },
        },
    }
    return document, first


# --------------------------------------------------------------------------- 2-D traces


@dataclass
class Trajectory:
    """Per-iteration states of one fit on 2-D samples, for the animation.

    Frame 0 is the start (initial centroids, no assignment yet); frame i >= 1 is
    iteration i: the network's clusters of the samples, its decision regions on the
    grid, and the centroids moved to the means of their clusters.

    Attributes
    ----------
    title : str
    centroids : list of ndarray (K, 2)
    labels : list of ndarray (n,) or None
    regions : list of ndarray (ny, nx) or None
    records : list of dict or None
        The estimator's history record of each iteration (None for frame 0).
    grid_x, grid_y : ndarray
        Coordinates of the region grid's columns and rows.
    converged : bool
    """

    title: str
    centroids: list[np.ndarray]
    labels: list[np.ndarray | None]
    regions: list[np.ndarray | None]
    records: list[dict | None]
    grid_x: np.ndarray
    grid_y: np.ndarray
    converged: bool = False

    @property
    def n_iter(self) -> int:
        """Iterations traced (frames - 1)."""
        return len(self.centroids) - 1


def _grid(x: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    low, high = x.min(axis=0), x.max(axis=0)
    pad = 0.08 * np.maximum(high - low, 1e-9)
    gx = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    gy = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    return gx, gy


def _network_labels(network: Any, points: np.ndarray) -> np.ndarray:
    """Arg-max of ``network`` on float rows, in eval mode and without gradients."""
    import torch

    reference = next(iter(network.parameters()), None)
    if reference is None:
        reference = next(iter(network.buffers()), None)
    dtype = reference.dtype if reference is not None else torch.float32
    device = reference.device if reference is not None else torch.device("cpu")
    was_training = network.training
    network.eval()
    try:
        with torch.inference_mode():
            chunks = [
                network(torch.as_tensor(points[i : i + 65536], dtype=dtype, device=device))
                .argmax(dim=1)
                .cpu()
                .numpy()
                for i in range(0, points.shape[0], 65536)
            ]
    finally:
        network.train(was_training)
    return np.concatenate(chunks)


def trace_2d(
    x: np.ndarray,
    n_clusters: int,
    seed: int,
    config: NeuralConfig,
    *,
    resolution: int = 150,
    init: np.ndarray | None = None,
    title: str | None = None,
    callbacks: Sequence[Callback] = (),
) -> tuple[Trajectory, Any]:
    """Fit ``NeuralKMeans`` on 2-D samples and record every iteration's state.

    A callback evaluates the network being trained (``model.current_network_``) on
    the samples and on a ``resolution`` x ``resolution`` grid after each iteration.

    Parameters
    ----------
    x : ndarray of shape (n, 2)
    n_clusters, seed : int
    config : NeuralConfig
    resolution : int
        Grid points per axis for the decision regions.
    init : ndarray of shape (K, 2), optional
        Initial centroids (overrides ``config.init``), e.g. to start K-means from the
        same place.
    title : str, optional
    callbacks : sequence of callables
        More callbacks (progress).

    Returns
    -------
    trajectory : Trajectory
    model : NeuralKMeans
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != 2:
        raise UsageError(f"the animation needs 2-D samples; got shape {x.shape}")
    gx, gy = _grid(x, resolution)
    mesh = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2).astype(np.float32)
    labels: list[np.ndarray | None] = [None]
    regions: list[np.ndarray | None] = [None]
    records: list[dict | None] = [None]

    def trace(iteration: int, record: dict, model: Any) -> bool:
        network = model.current_network_
        labels.append(_network_labels(network, x))
        regions.append(_network_labels(network, mesh).reshape(gy.size, gx.size))
        records.append({k: v for k, v in record.items() if k != "centroids"})
        return False

    model = _estimator(
        n_clusters, seed, config, init=init, record_centroids=True, callbacks=[trace, *callbacks]
    )
    model.fit(x)
    model.callbacks = None
    centroids = [np.asarray(model.initial_centers_)]
    centroids += [np.asarray(record["centroids"]) for record in model.history_]
    trajectory = Trajectory(
        title=title or f"neural-kmeans ({config.network})",
        centroids=centroids,
        labels=labels,
        regions=regions,
        records=records,
        grid_x=gx,
        grid_y=gy,
        converged=bool(model.converged_),
    )
    return trajectory, model
