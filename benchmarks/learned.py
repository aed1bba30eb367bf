"""Clustering quality of ``features="learned"`` against the pixel loop and K-means.

For each data set (fit and scored on all its samples) and each method, over several
seeds:

- ``mnist``, ``fashion-mnist``: all 70,000 images (train and test);
- ``mnist-test``: MNIST's 10,000 test images alone (the time of a 10,000-sample fit);
- ``mnist-unbalanced``: MNIST's 70,000 images with class c cut to
  ``m * 10 ** (-c / 9)`` images (m: the smallest class's count), so the largest class
  is 10 times the smallest (25,797 images, drawn with a fixed seed, 0);
- ``digits``: scikit-learn's 1,797 8x8 images;
- ``digits-rows``: the same as flat rows of 64 features (the rows' path: no
  convolutions, no image augmentation);

and each method:

- ``kmeans``: scikit-learn ``KMeans(10, n_init=1)`` on the pixels scaled to [0, 1];
- ``pixels``: ``NeuralKMeans(10, max_iter=20, tol=1e-3)``, the faithful loop on the
  pixels (the CNN for images);
- ``learned``: ``NeuralKMeans(10, features="learned")`` with its defaults.

Every fit runs in its own subprocess (so its peak memory is its own), one after the
other; the table gives mean ± standard deviation over the seeds of ACC, NMI and ARI,
the mean wall seconds of one fit and the largest peak resident memory.

Usage::

    python benchmarks/learned.py --data-dir ../shared/data [--datasets mnist,digits]
        [--methods kmeans,learned] [--seeds 0,1,2] [--threads 2] [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from speed import run_json_worker, versions  # benchmarks/ is on the path when run

DATASETS = (
    "mnist",
    "fashion-mnist",
    "mnist-test",
    "mnist-unbalanced",
    "digits",
    "digits-rows",
)
#: The largest class of ``mnist-unbalanced`` over its smallest.
UNBALANCED_RATIO = 10.0
METHODS = ("kmeans", "pixels", "learned")


def worker(
    dataset: str,
    method: str,
    seed: int,
    data_dir: str | None,
    learned_params: dict | None = None,
) -> dict:
    """Fit one method on one data set in this process and return its measurements
    (``learned_params``: the learned mode's, None for its defaults)."""
    import resource

    import torch

    from neural_kmeans import NeuralKMeans
    from neural_kmeans.core.metrics import evaluate

    X, y = benchmark_data(dataset, data_dir)
    extra: dict = {}
    started = time.perf_counter()
    if method == "kmeans":
        from sklearn.cluster import KMeans

        flat = X.reshape(len(X), -1).astype(np.float32)
        if X.dtype == np.uint8:
            flat /= 255.0
        labels = KMeans(10, n_init=1, random_state=seed).fit(flat).labels_
    elif method == "pixels":
        model = NeuralKMeans(10, max_iter=20, tol=1e-3, random_state=seed).fit(X)
        labels = model.labels_
    elif method == "learned":
        model = NeuralKMeans(
            10, features="learned", learned_params=learned_params, random_state=seed
        ).fit(X)
        labels = model.labels_
        extra["stages"] = {k: round(v, 1) for k, v in model.timings_.items()}
    else:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    seconds = time.perf_counter() - started
    scores = evaluate(y, labels)
    return {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "samples": len(X),
        "seconds": seconds,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "load": os.getloadavg()[0],
        **scores,
        **extra,
    }


def benchmark_data(dataset: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The samples and classes of one of :data:`DATASETS` (the classes for scoring only)."""
    from neural_kmeans.io.datasets import load_dataset

    name = {"mnist-test": "mnist", "mnist-unbalanced": "mnist", "digits-rows": "digits"}
    split = "test" if dataset == "mnist-test" else "all"
    X, y = load_dataset(name.get(dataset, dataset), split=split, data_dir=data_dir)
    X, y = np.asarray(X), np.asarray(y)
    if dataset == "digits-rows":
        X = X.reshape(len(X), -1)
    if dataset == "mnist-unbalanced":
        keep = unbalanced_subset(y, UNBALANCED_RATIO, seed=0)
        X, y = X[keep], y[keep]
    return X, y


def unbalanced_subset(y: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """Indices (sorted) that keep ``m * ratio ** (-c / (C - 1))`` samples of class c (m:
    the smallest class's count, C classes), drawn without replacement with ``seed``."""
    rng = np.random.RandomState(seed)
    classes = np.unique(y)
    smallest = min(int((y == c).sum()) for c in classes)
    keep = [
        rng.choice(
            np.flatnonzero(y == c),
            int(smallest * ratio ** (-i / (len(classes) - 1))),
            replace=False,
        )
        for i, c in enumerate(classes)
    ]
    return np.sort(np.concatenate(keep))


def run_worker(dataset: str, method: str, seed: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", dataset, method, str(seed)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if args.learned_params:
        command += ["--learned-params", json.dumps(args.learned_params)]
    return run_json_worker(command, args.threads, f"{dataset} {method} {seed}")


def table(results: list[dict]) -> str:
    """Markdown: one row per data set and method, mean ± std over the seeds."""
    lines = [
        "| data set | method | ACC | NMI | ARI | wall s (one fit) | peak RSS MiB | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["dataset"], r["method"]) for r in results)
    for dataset, method in keys:
        rows = [r for r in results if r["dataset"] == dataset and r["method"] == method]

        def stat(name: str, rows: list[dict] = rows) -> str:
            values = np.array([r[name] for r in rows])
            return f"{values.mean():.3f} ± {values.std():.3f}"

        seconds = np.mean([r["seconds"] for r in rows])
        rss = max(r["max_rss_mib"] for r in rows)
        lines.append(
            f"| {dataset} | {method} | {stat('acc')} | {stat('nmi')} | {stat('ari')} | "
            f"{seconds:.0f} | {rss:.0f} | {len(rows)} |"
        )
    return "\n".join(lines)


def stage_table(results: list[dict]) -> str:
    """Markdown: the learned fits' stage seconds, mean over the seeds, per data set."""
    learned = [r for r in results if "stages" in r]
    if not learned:
        return ""
    names = list(dict.fromkeys(k for r in learned for k in r["stages"]))
    lines = [
        "| data set | samples | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in learned):
        rows = [r for r in learned if r["dataset"] == dataset]
        cells = [f"{np.mean([r['stages'].get(k, 0.0) for r in rows]):.1f}" for k in names]
        lines.append(f"| {dataset} | {rows[0]['samples']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    """The CPU, core count and versions (``speed.py``'s line) and umap-learn's version."""
    import umap

    return f"{versions()}, umap-learn {umap.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--threads", type=int, default=0, help="threads of every fit (0: the default)"
    )
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--json", default=None, help="also write the raw results to this file")
    parser.add_argument(
        "--learned-params",
        type=json.loads,
        default=None,
        help="the learned fits' learned_params, as JSON (e.g. '{\"refine_rounds\": 1}')",
    )
    parser.add_argument("--worker", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dataset, method, seed = args.worker
        print(json.dumps(worker(dataset, method, int(seed), args.data_dir, args.learned_params)))
        return
    results: list[dict] = []
    loads = [os.getloadavg()[0]]
    for dataset in args.datasets.split(","):
        for method in args.methods.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                results.append(run_worker(dataset, method, seed, args))
                loads.append(os.getloadavg()[0])
                # the files hold every fit done so far (a long run can be read midway)
                write(report(results, loads, args.threads), results, args)
    print(report(results, loads, args.threads))


def report(results: list[dict], loads: list[float], threads: int) -> str:
    """The results table, the machine line and the learned fits' stages."""
    text = (
        f"{table(results)}\n\n{machine()}; threads per fit: {threads or 'default'}; "
        f"1-minute load average during the run: {min(loads):.1f} to {max(loads):.1f}\n"
    )
    stages = stage_table(results)
    if stages:
        text += f"\nStages of the learned fits (seconds, mean over the seeds):\n\n{stages}\n"
    return text


def write(text: str, results: list[dict], args: argparse.Namespace) -> None:
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
