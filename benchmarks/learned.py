"""Clustering quality of ``features="learned"`` against the pixel loop and K-means.

For each data set (fit and scored on all its samples: MNIST and Fashion-MNIST
70,000 images, digits 1,797) and each method, over several seeds:

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

DATASETS = ("mnist", "fashion-mnist", "digits")
METHODS = ("kmeans", "pixels", "learned")


def worker(dataset: str, method: str, seed: int, data_dir: str | None) -> dict:
    """Fit one method on one data set in this process and return its measurements."""
    import resource

    import torch

    from neural_kmeans import NeuralKMeans
    from neural_kmeans.core.metrics import evaluate
    from neural_kmeans.io.datasets import load_dataset

    X, y = load_dataset(dataset, split="all", data_dir=data_dir)
    X = np.asarray(X)
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
        model = NeuralKMeans(10, features="learned", random_state=seed).fit(X)
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
        "seconds": seconds,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "load": os.getloadavg()[0],
        **scores,
        **extra,
    }


def run_worker(dataset: str, method: str, seed: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", dataset, method, str(seed)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
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
    parser.add_argument("--worker", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dataset, method, seed = args.worker
        print(json.dumps(worker(dataset, method, int(seed), args.data_dir)))
        return
    results = []
    loads = [os.getloadavg()[0]]
    for dataset in args.datasets.split(","):
        for method in args.methods.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                results.append(run_worker(dataset, method, seed, args))
                loads.append(os.getloadavg()[0])
    text = (
        f"{table(results)}\n\n{machine()}; threads per fit: {args.threads or 'default'}; "
        f"1-minute load average during the run: {min(loads):.1f} to {max(loads):.1f}\n"
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
