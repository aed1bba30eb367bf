"""The reference notebook's protocol on MNIST, over several seeds.

Fit on the 60,000 training images, predict the 10,000 test images, report test Rand
index and purity (and the other metrics) for:

- scikit-learn KMeans(max_iter=30), as the notebook;
- the CNN loop, init="random", 20 iterations, one Adam step per iteration (the
  notebook's code);
- the same with ten Adam steps per iteration (what the notebook's figures reflect).

Usage::

    python benchmarks/reference_protocol.py --data-dir ../shared/data --seeds 0 1 2

Prints a markdown table (mean ± std over the seeds) and writes JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import sklearn
import torch
from sklearn.cluster import KMeans

import neural_kmeans
from neural_kmeans import NeuralKMeans
from neural_kmeans.core.metrics import evaluate
from neural_kmeans.io.datasets import load_dataset

NOTEBOOK = {"K-means": {"rand": 0.880, "purity": 0.594}, "CNN": {"rand": 0.851, "purity": 0.492}}


def run_method(method: str, seed: int, X, X_test, y_test) -> dict:
    started = time.perf_counter()
    if method == "kmeans":
        flat = X.reshape(len(X), -1) / 255.0
        model = KMeans(10, max_iter=30, n_init=1, random_state=seed).fit(flat)
        predicted = model.predict(X_test.reshape(len(X_test), -1) / 255.0)
        n_iter = int(model.n_iter_)
    else:
        steps = 1 if method == "cnn-1-step" else 10
        model = NeuralKMeans(
            10,
            network="cnn",
            init="random",
            steps_per_iter=steps,
            max_iter=20,
            random_state=seed,
        ).fit(X)
        predicted = model.predict(X_test)
        n_iter = model.n_iter_
    seconds = time.perf_counter() - started
    return {**evaluate(y_test, predicted), "seconds": seconds, "n_iter": n_iter}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (IDX files)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    X, _ = load_dataset("mnist", "train", data_dir=args.data_dir)
    X_test, y_test = load_dataset("mnist", "test", data_dir=args.data_dir)
    methods = ["kmeans", "cnn-1-step", "cnn-10-steps"]
    results = {m: [run_method(m, s, X, X_test, y_test) for s in args.seeds] for m in methods}
    print(f"MNIST, fit on 60,000 train, scored on 10,000 test; seeds {args.seeds}")
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, neural-kmeans {neural_kmeans.__version__}\n"
    )
    print(
        "| method | test Rand | test purity | test ACC | test NMI | seconds "
        "| notebook Rand / purity |"
    )
    print("|---|---|---|---|---|---|---|")
    for method, runs in results.items():
        cells = []
        for key in ("rand", "purity", "acc", "nmi", "seconds"):
            values = np.array([r[key] for r in runs])
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}")
        ref = NOTEBOOK["K-means" if method == "kmeans" else "CNN"]
        print(f"| {method} | {' | '.join(cells)} | {ref['rand']:.3f} / {ref['purity']:.3f} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"seeds": args.seeds, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
