"""The protocols behind the command line: fit, score, compare with K-means, sweep K.

Everything here returns plain Python data (dicts of floats, lists, arrays) and
writes nothing; :mod:`neural_kmeans.app.cli` turns it into files and
:mod:`neural_kmeans.app.plotting` / :mod:`neural_kmeans.app.animation` into figures. No
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

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neural_kmeans.app.data import DataSplit, resolve_clusters, versions, warm_up
from neural_kmeans.app.errors import UsageError
from neural_kmeans.core.metrics import METRIC_NAMES, evaluate

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

# --------------------------------------------------------------------------- fitting


@dataclass
class NeuralConfig:
    """The estimator's options that the command line exposes."""

    network: str = "auto"
    init: str = "k-means++"
    max_iter: int | None = None
    steps_per_iter: int = 10
    learning_rate: float | None = None
    tol: float = 1e-4
    n_init: str | int = "auto"
    batch_size: int | None = None
    device: str = "auto"
    features: str = "pixels"
    checkpoint_dir: str | None = None
    resume: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict."""
        return dict(self.__dict__)


#: ``callback(state) -> stop?``, as the estimator takes it (state: the loop's
#: :class:`~neural_kmeans.core.loop.LoopState`).
Callback = Callable[[Any], Any]


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
        n_init=config.n_init,
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


def fit_kmeans(
    data: DataSplit, n_clusters: int, seed: int, max_iter: int, tol: float = 1e-4
) -> MethodRun:
    """Fit scikit-learn's ``KMeans(n_init=1)`` on the same (scaled, flat) samples and score it."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters, n_init=1, max_iter=max_iter, tol=tol, random_state=seed)
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
    from neural_kmeans.core.networks import NETWORK_NAMES

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
        run = fit_kmeans(data, n_clusters, seed, kmeans_max_iter, config.tol)
    elif method == NEURAL or method.startswith(f"{NEURAL}:"):
        if method == LEARNED:
            config = NeuralConfig(**{**config.as_dict(), "features": "learned"})
        elif ":" in method:
            network = method.split(":", 1)[1]
            config = NeuralConfig(**{**config.as_dict(), "network": network, "features": "pixels"})
        callback = reporter.start_fit(label, max_iterations(config))
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


def max_iterations(config: NeuralConfig) -> int:
    """The most iterations a fit with ``config`` may run (for progress bars)."""
    if config.features == "learned":
        from neural_kmeans.representation.self_labelling import LearnedParams

        return LearnedParams().max_iter
    if config.max_iter is not None:
        return config.max_iter
    return 300 if config.network == "nearest-centroid" else 20


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


def history_record(record: dict, scale: float) -> dict[str, Any]:
    """A history record without its arrays, JSON-ready, inertia in the scaled units."""
    keys = ("iteration", "loss", "changed", "seconds")
    return {**{key: record[key] for key in keys}, "inertia": record["inertia"] * scale**2}


def run_record(run: MethodRun) -> dict[str, Any]:
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
    return {"runs": [run_record(run) for run in runs], "summary": summarize(runs)}


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
