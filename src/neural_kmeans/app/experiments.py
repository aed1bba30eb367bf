"""The protocols behind the command line: fit, score, compare methods, sweep K.

Everything here returns plain Python data (dicts of floats, lists, arrays) and
writes nothing; :mod:`neural_kmeans.app.commands` turns it into files and
:mod:`neural_kmeans.app.plotting` / :mod:`neural_kmeans.app.animation` into figures.

The protocol of one run
-----------------------
* A method is named the same everywhere: ``cnn``, ``mlp``, ``linear``,
  ``nearest-centroid`` (the network that makes the loop K-means), ``learned`` (the
  learned space) or ``kmeans`` (scikit-learn's ``KMeans``); ``auto`` stands for ``cnn``
  on images and ``mlp`` on rows.
* The model is fitted on the training split (``"train"`` for MNIST and
  Fashion-MNIST, all the samples for the other sources); train scores come from the
  fitted labels, test scores (when there is a test split) from ``predict``.
* ``kmeans`` is fitted on the same samples, flattened and scaled the same way (uint8
  divided by 255), with the same ``init``, ``n_init`` and ``tol`` and ``max_iter``
  (300 unless given).
* ``inertia`` is in the units both methods see: the samples scaled to [0, 1] (uint8
  divided by 255; other data as is). ``seconds`` is the wall time of ``fit`` alone.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from neural_kmeans.app.data import DataSplit, resolve_clusters, versions, warm_up
from neural_kmeans.app.errors import UsageError
from neural_kmeans.core.metrics import METRIC_NAMES, evaluate

#: scikit-learn's K-means in results.
KMEANS = "kmeans"
#: The learned mode in results.
LEARNED = "learned"
#: The networks of the pixel loop, by their method names.
NETWORKS = ("cnn", "mlp", "linear", "nearest-centroid")
#: The reference notebook's published test scores on MNIST (K=10).
NOTEBOOK_REFERENCE: dict[str, dict[str, float]] = {
    "kmeans": {"rand": 0.880, "purity": 0.594},
    "cnn": {"rand": 0.851, "purity": 0.492},
}
#: The label-free scores ``sweep`` adds: silhouette on at most this many samples.
SILHOUETTE_SAMPLES = 2000


# --------------------------------------------------------------------------- fitting
@dataclass
class NeuralConfig:
    """The estimator's options the command line exposes; None: the estimator's default."""

    network: str = "auto"
    init: str | None = None
    max_iter: int | None = None
    steps_per_iter: int | None = None
    learning_rate: float | None = None
    tol: float | None = None
    n_init: str | int | None = None
    batch_size: int | None = None
    device: str = "auto"
    features: str = "pixels"
    learned_params: dict[str, Any] | None = None
    checkpoint_dir: str | None = None
    resume: bool = False
    verbose: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict."""
        return dict(self.__dict__)


#: ``callback(state) -> stop?``, as the estimator takes it (state: the loop's
#: :class:`~neural_kmeans.core.state.LoopState`).
Callback = Callable[[Any], Any]


class Reporter:
    """Hooks the protocols call while they run; this base class stays silent.

    The command line subclasses it to show progress bars and log lines.
    """

    def plan(self, fits: int) -> None:
        """The protocol is about to make ``fits`` fits (for its progress and time left)."""

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
    """One fitted and scored method (named as in the module's notes): ``train`` and
    ``test`` hold the metrics (None without labels or split), ``seconds`` the fit's wall
    time, ``inertia`` is in the scaled units, ``model`` the fitted NeuralKMeans or KMeans.
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
    ``config.init``) and the further estimator ``options``; unset options keep the
    estimator's defaults; the learned mode takes ``max_iter`` and ``tol`` as its own."""
    from neural_kmeans.estimator import NeuralKMeans

    names = ("steps_per_iter", "learning_rate", "n_init", "batch_size", "max_iter", "tol")
    given = {"init": config.init if init is None else init}
    given.update({name: getattr(config, name) for name in names})
    if config.features == LEARNED:
        loop = {k: given.pop(k) for k in ("max_iter", "tol")}
        learned = {**(config.learned_params or {})}
        learned.update({k: v for k, v in loop.items() if v is not None})
        if config.verbose:  # the stages' progress; the iteration lines are the caller's
            learned["progress"] = True
        options.setdefault("learned_params", learned or None)
    settings = {k: v for k, v in given.items() if v is not None}
    return NeuralKMeans(
        n_clusters,
        network=config.network,
        device=config.device,
        features=config.features,
        random_state=seed,
        verbose=0 if config.features == LEARNED else config.verbose,
        **settings,
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
    method: str = "auto",
) -> MethodRun:
    """Fit ``NeuralKMeans`` on the training split and score it."""
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


def kmeans_settings(config: NeuralConfig) -> dict[str, Any]:
    """scikit-learn ``KMeans``'s settings under ``config``: its init, runs, stopping rule."""
    return {
        "init": config.init or "k-means++",
        "n_init": config.n_init or "auto",
        "max_iter": config.max_iter or 300,
        "tol": 1e-4 if config.tol is None else config.tol,
    }


def fit_kmeans(data: DataSplit, n_clusters: int, seed: int, config: NeuralConfig) -> MethodRun:
    """Fit scikit-learn's ``KMeans`` on the same (scaled, flat) samples and score it."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters, random_state=seed, **kmeans_settings(config))
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
    data: DataSplit, n_clusters: int, runs: dict[str, MethodRun], config: dict[str, Any]
) -> dict[str, Any]:
    """The ``results.json`` document of one run: ``{"dataset", "n_clusters", "split":
    {"fit", "test"}, "methods": {name: RUN}, "config", "versions"}``."""
    return {
        "dataset": data.name,
        "n_clusters": n_clusters,
        "split": data.split,
        "methods": {name: run.to_dict() for name, run in runs.items()},
        "config": config,
        "versions": versions(),
    }


# --------------------------------------------------------------------------- the methods
def images_of(data: DataSplit) -> bool:
    """Whether the CNN applies: images of at least 8x8 pixels, or rows of 784 features
    (which the estimator reads as 28x28 images)."""
    shape = data.image_shape
    if shape is None:
        return data.n_features == 28 * 28
    return min(shape[-2:]) >= 8


def resolve_method(method: str, data: DataSplit) -> str:
    """``auto`` as the network it stands for on ``data`` (cnn for images, mlp for rows)."""
    if method == "auto":
        return "cnn" if images_of(data) else "mlp"
    return method


def available_methods(data: DataSplit) -> list[str]:
    """The methods ``compare`` runs by default: every network that applies, then kmeans."""
    return [n for n in NETWORKS if n != "cnn" or images_of(data)] + [KMEANS]


def check_methods(data: DataSplit, methods: Sequence[str]) -> list[str]:
    """The distinct ``methods`` (``auto`` resolved), each checked against ``data``.

    Raises
    ------
    UsageError
        For a method that does not apply to the data (the CNN on rows or tiny images).
    """
    resolved = [resolve_method(m, data) for m in methods]
    for method in resolved:
        if method == "cnn" and not images_of(data):
            raise UsageError(
                f"the cnn method needs images of at least 8x8 pixels; {data.name} holds "
                f"samples of shape {tuple(data.x_train.shape[1:])}: use mlp"
            )
    return list(dict.fromkeys(resolved))


def method_config(method: str, config: NeuralConfig) -> NeuralConfig:
    """``config`` for one neural method: its network, or the learned mode."""
    if method == LEARNED:
        return replace(config, features=LEARNED, network="auto")
    return replace(config, network=method, features="pixels")


def max_iterations(config: NeuralConfig) -> int:
    """The most iterations a fit with ``config`` may run (for progress bars)."""
    if config.features == LEARNED:
        from neural_kmeans.representation.self_labelling import LearnedParams

        given = (config.learned_params or {}).get("max_iter")
        return config.max_iter or given or LearnedParams().max_iter
    if config.max_iter is not None:
        return config.max_iter
    return 300 if config.network == "nearest-centroid" else 20


def fit_method(
    method: str,
    data: DataSplit,
    n_clusters: int,
    seed: int,
    config: NeuralConfig,
    *,
    reporter: Reporter | None = None,
    record_centroids: bool = False,
    name: str | None = None,
) -> MethodRun:
    """Fit one method by name (see the module's notes), reported as ``name`` (its own
    name by default)."""
    reporter = reporter or Reporter()
    name = name or method
    label = f"{name} K={n_clusters} seed={seed}"
    if method == KMEANS:
        reporter.start_fit(label, 0)
        run = fit_kmeans(data, n_clusters, seed, config)
    else:
        settings = method_config(method, config)
        callback = reporter.start_fit(label, max_iterations(settings))
        run = fit_neural(
            data,
            n_clusters,
            seed,
            settings,
            record_centroids=record_centroids,
            callbacks=[callback] if callback else (),
            method=name,
        )
    reporter.end_fit(label, run)
    return run


# --------------------------------------------------------------------------- compare, sweep
def _mean_std(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if array.size > 1 else 0.0
    return {"mean": float(array.mean()), "std": std}


def summarize(runs: Sequence[MethodRun]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of every metric, seconds, n_iter and
    inertia: ``{"train": {metric: {"mean", "std"}} or None, "test": ... or None,
    "seconds": ..., "n_iter": ..., "inertia": ..., "n_runs": int}``."""
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


def _fit_seeds(
    method: str,
    data: DataSplit,
    n_clusters: int,
    seeds: Sequence[int],
    config: NeuralConfig,
    reporter: Reporter | None,
    done: dict[tuple[str, int, int], MethodRun] | None = None,
) -> tuple[list[MethodRun], dict[str, Any]]:
    """``method`` fitted with each seed (a run already ``done`` is taken as it is): the
    runs, and ``{"runs": [RUN + seed], "summary": summarize(...)}``."""
    done = done or {}
    runs = [
        done.get((method, n_clusters, seed))
        or fit_method(method, data, n_clusters, seed, config, reporter=reporter)
        for seed in seeds
    ]
    return runs, {"runs": [run_record(run) for run in runs], "summary": summarize(runs)}


def compare_methods(
    data: DataSplit,
    n_clusters: int,
    methods: Sequence[str],
    seeds: Sequence[int],
    config: NeuralConfig,
    *,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Fit every method with every seed; summarize each method over the seeds:
    ``{"dataset", "n_clusters", "split", "score_split", "seeds", "methods": {method:
    {"runs": [RUN + seed], "summary": summarize(...)}}}``."""
    methods = check_methods(data, methods)
    (reporter or Reporter()).plan(len(methods) * len(seeds))
    document: dict[str, Any] = {
        "dataset": data.name,
        "n_clusters": n_clusters,
        "split": data.split,
        "score_split": data.score_split,
        "seeds": list(seeds),
        "methods": {},
    }
    for method in methods:
        _, document["methods"][method] = _fit_seeds(
            method, data, n_clusters, seeds, config, reporter
        )
    return document


def label_free_scores(data: DataSplit, runs: Sequence[MethodRun]) -> dict[str, Any]:
    """Scores that need no labels: the silhouette of each run (mean ± std, on at most
    :data:`SILHOUETTE_SAMPLES` training samples) and the stability of the clusterings
    over the seeds (the mean adjusted Rand index of every pair; None for one seed)."""
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    rows = data.rows("train")
    size = min(SILHOUETTE_SAMPLES, rows.shape[0])
    silhouettes = []
    for run in runs:
        if len(np.unique(run.train_labels)) < 2:
            silhouettes.append(0.0)  # one cluster: silhouette is undefined, 0 by convention
            continue
        value = silhouette_score(rows, run.train_labels, sample_size=size, random_state=0)
        silhouettes.append(float(value))
    pairs = itertools.combinations(runs, 2)
    scores = [adjusted_rand_score(a.train_labels, b.train_labels) for a, b in pairs]
    stability = float(np.mean(scores)) if scores else None
    return {"silhouette": _mean_std(silhouettes), "stability": stability}


def sweep_clusters(
    data: DataSplit,
    clusters: Sequence[int],
    methods: Sequence[str],
    seeds: Sequence[int],
    config: NeuralConfig,
    *,
    reporter: Reporter | None = None,
    kmeans_config: NeuralConfig | None = None,
    done: dict[tuple[str, int, int], MethodRun] | None = None,
) -> dict[str, Any]:
    """Every method at every K over the seeds, with the label-free scores:
    ``{"dataset", "split", "score_split", "clusters", "seeds", "methods": {method:
    [{"n_clusters", "runs", "summary", "silhouette", "stability"} per K]}}``.

    ``kmeans_config`` sets K-means apart (default: ``config``); runs already ``done``,
    by ``(method, K, seed)``, are not fitted again.
    """
    for k in clusters:
        resolve_clusters(data, k)
    methods = check_methods(data, methods)
    done = done or {}
    todo = [(m, k, s) for k in clusters for m in methods for s in seeds if (m, k, s) not in done]
    (reporter or Reporter()).plan(len(todo))
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
            settings = kmeans_config if method == KMEANS and kmeans_config else config
            runs, entry = _fit_seeds(method, data, k, seeds, settings, reporter, done)
            scores = label_free_scores(data, runs)
            document["methods"][method].append({"n_clusters": k, **entry, **scores})
    return document
