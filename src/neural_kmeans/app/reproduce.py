"""The reference notebook's protocol: K-means and its CNN (one and ten Adam steps per
iteration) fitted on MNIST's training images and scored on its test images, then the
sweep over K."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neural_kmeans.app.data import DataSplit, resolve_clusters
from neural_kmeans.app.experiments import (
    KMEANS,
    NEURAL,
    NOTEBOOK_REFERENCE,
    MethodRun,
    NeuralConfig,
    Reporter,
    fit_method,
    fit_neural,
    history_record,
    run_record,
    summarize,
    sweep_clusters,
)

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
    base = NeuralConfig(
        network="cnn", init="random", n_init=1, max_iter=max_iter, tol=0.0, device=device
    )
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
            name: {"runs": [run_record(r) for r in method_runs], "summary": summarize(method_runs)}
            for name, method_runs in runs.items()
        },
        "histories": {
            name: [history_record(record, data.scale) for record in run.model.history_]
            for name, run in first.items()
            if name != KMEANS
        },
        "sweep": sweep,
        "reference": NOTEBOOK_REFERENCE,
        "protocol": _protocol(max_iter, kmeans_max_iter, clusters, seeds),
    }
    return document, first


def _protocol(
    max_iter: int, kmeans_max_iter: int, clusters: Sequence[int], seeds: Sequence[int]
) -> dict[str, Any]:
    """The settings of the run, as ``reproduce.json`` records them."""
    return {
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
    }
