"""The reference notebook's protocol: K-means and its CNN (one and ten Adam steps per
iteration) fitted on MNIST's training images and scored on its test images, then the
sweep over K."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from neural_kmeans.app.data import DataSplit, resolve_clusters
from neural_kmeans.app.experiments import (
    KMEANS,
    NOTEBOOK_REFERENCE,
    MethodRun,
    NeuralConfig,
    Reporter,
    fit_method,
    history_record,
    run_record,
    summarize,
    sweep_clusters,
)

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
    """The notebook's protocol: for every seed, K-means (``max_iter=kmeans_max_iter``)
    and the CNN loop (``init="random"``, ``max_iter`` iterations) with one Adam step per
    iteration (its code) and with ten (what its figures reflect), fitted on the training
    split, scored on the test split; then the sweep over ``clusters`` (first seed).

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
    for k in [n_clusters, *clusters]:
        resolve_clusters(data, k)
    base = NeuralConfig(
        network="cnn", init="random", n_init=1, max_iter=max_iter, tol=0.0, device=device
    )
    kmeans = NeuralConfig(init="k-means++", n_init=1, max_iter=kmeans_max_iter)
    configs = {
        name: replace(base, steps_per_iter=steps) for name, steps in REPRODUCE_VARIANTS.items()
    }
    runs: dict[str, list[MethodRun]] = {KMEANS: [], **{name: [] for name in configs}}
    first: dict[str, MethodRun] = {}
    sweep_fits = 0 if not clusters else 2 * len(clusters) - 2 * (n_clusters in clusters)
    reporter.plan(len(seeds) * (1 + len(configs)) + sweep_fits)
    for index, seed in enumerate(seeds):
        runs[KMEANS].append(fit_method(KMEANS, data, n_clusters, seed, kmeans, reporter=reporter))
        for name, config in configs.items():
            runs[name].append(
                fit_method(
                    "cnn",
                    data,
                    n_clusters,
                    seed,
                    config,
                    reporter=reporter,
                    record_centroids=index == 0,
                    name=name,
                )
            )
        if index == 0:
            first = {name: method_runs[0] for name, method_runs in runs.items()}
        else:
            for name in configs:
                runs[name][-1].model = None
    sweep = None
    if clusters:
        # the first seed's fits at K are the protocol's own: not fitted twice
        done = {
            (KMEANS, n_clusters, seeds[0]): first[KMEANS],
            ("cnn", n_clusters, seeds[0]): first["cnn-10-steps"],
        }
        sweep = sweep_clusters(
            data,
            clusters,
            [KMEANS, "cnn"],
            list(seeds)[:1],
            configs["cnn-10-steps"],
            kmeans_config=kmeans,
            reporter=reporter,
            done=done,
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
