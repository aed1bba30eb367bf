"""Speed and memory on MNIST-70k: neural-kmeans (linear, mlp, cnn) against K-means.

Each method runs in its own subprocess (so its peak memory is its own), one after the
other on the same machine, and the table gives ratios to scikit-learn KMeans(n_init=1)
measured in the same run. Also measured, side by side:

- the reference protocol's iteration (CNN, 60,000 training images) against a bare
  forward pass of the same network over the same images;
- a memory-mapped uint8 file of 1,000,000 x 784 against one of 100,000: the process's
  peak anonymous memory (RssAnon) must not grow with N.

Usage::

    python benchmarks/speed.py --data-dir ../shared/data [--skip-memmap] [--out table.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


class AnonymousMemoryPeak:
    """Samples this process's RssAnon (Linux) in a thread; ``peak_mib`` is the maximum."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak_mib, self._stop = interval, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._read())
            time.sleep(self.interval)

    def __enter__(self) -> AnonymousMemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._read())


def worker(method: str, data_dir: str | None, seed: int) -> dict:
    """Run one method in this process and return its measurements."""
    import resource

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as neural_kmeans sets it for torch
    import torch

    from neural_kmeans import NeuralKMeans
    from neural_kmeans.core.assignment import inference_network
    from neural_kmeans.core.metrics import evaluate
    from neural_kmeans.core.samples import SampleBatches
    from neural_kmeans.io.datasets import load_dataset

    result: dict = {"method": method}
    if method.startswith("memmap-"):
        path = method.split("-", 1)[1]
        X = np.load(path, mmap_mode="r")
        with AnonymousMemoryPeak() as peak:
            started = time.perf_counter()
            model = NeuralKMeans(10, network="linear", max_iter=3, random_state=seed).fit(X)
            result["seconds"] = time.perf_counter() - started
        result.update(n=len(X), anon_peak_mib=peak.peak_mib, n_iter=model.n_iter_)
        return result
    if method == "reference-iteration":
        X, _ = load_dataset("mnist", "train", data_dir=data_dir)
        model = NeuralKMeans(10, network="cnn", init="random", max_iter=3, random_state=seed)
        model.fit(X)
        samples = SampleBatches(X, (1, 28, 28), torch.float32, torch.device("cpu"))
        network = inference_network(model.network_, samples.device)
        started = time.perf_counter()
        with torch.inference_mode():
            for _, rows in samples(model._batch_size()):
                network(samples.as_input(rows)).argmax(dim=1)
        forward = time.perf_counter() - started
        iterations = [r["seconds"] for r in model.history_]
        result.update(
            iteration_seconds=iterations, best_iteration=min(iterations), forward_seconds=forward
        )
        return result
    X, y = load_dataset("mnist", "all", data_dir=data_dir)
    flat = X.reshape(len(X), -1)
    with AnonymousMemoryPeak() as peak:
        started = time.perf_counter()
        if method == "kmeans":
            from sklearn.cluster import KMeans

            model = KMeans(10, n_init=1, random_state=seed).fit(flat / 255.0)
            labels, n_iter = model.labels_, int(model.n_iter_)
        elif method == "faiss":
            import faiss

            data = np.ascontiguousarray(flat, dtype=np.float32) / 255.0
            kmeans = faiss.Kmeans(data.shape[1], 10, niter=300, seed=seed, verbose=False)
            kmeans.train(data)
            labels = kmeans.index.search(data, 1)[1].ravel()
            n_iter = 300
        else:
            network = method.removeprefix("neural-")
            model = NeuralKMeans(
                10,
                network=network,
                max_iter=100 if network != "cnn" else 20,
                tol=1e-3,
                random_state=seed,
            ).fit(X)
            labels, n_iter = model.labels_, model.n_iter_
        seconds = time.perf_counter() - started
    scores = evaluate(y, labels)
    result.update(
        seconds=seconds,
        n_iter=n_iter,
        per_iteration=seconds / max(n_iter, 1),
        acc=scores["acc"],
        nmi=scores["nmi"],
        anon_peak_mib=peak.peak_mib,
        max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    return result


def run_json_worker(command: list[str], threads: int, what: str) -> dict:
    """Run ``command`` (a worker printing one JSON line last) with ``threads`` threads in
    every pool (0: the default), echo its result to stderr and return it."""
    env = dict(os.environ)
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
        env["NUMBA_NUM_THREADS"] = str(threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"worker {what} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr, flush=True)  # progress, and the raw numbers
    return result


def run_worker(method: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--seed", str(args.seed)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    return run_json_worker(command, args.threads, method)


def versions() -> str:
    import sklearn
    import torch

    import neural_kmeans

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"neural-kmeans {neural_kmeans.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--skip-memmap", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads of every method (OMP_NUM_THREADS in each worker); 0: the default",
    )
    parser.add_argument("--out", default=None, help="also write the tables to this file")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data_dir, args.seed)))
        return
    methods = ["kmeans", "neural-linear", "neural-mlp", "neural-cnn"]
    try:
        import faiss  # noqa: F401

        methods.insert(1, "faiss")
    except ImportError:
        pass
    rows = {m: run_worker(m, args) for m in methods}
    base = rows["kmeans"]["seconds"]
    lines = [
        f"MNIST-70k (all 70,000 images), K=10, seed {args.seed}, "
        f"{args.threads or 'default'} thread(s) per method. {versions()}",
        "",
        "| method | wall s | × K-means | iterations | s / iteration | peak anon MiB "
        "| peak RSS MiB | ACC | NMI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, r in rows.items():
        lines.append(
            f"| {method} | {r['seconds']:.2f} | {r['seconds'] / base:.2f} | {r['n_iter']} "
            f"| {r['per_iteration']:.3f} | {r['anon_peak_mib']:.0f} | {r['max_rss_mib']:.0f} "
            f"| {r['acc']:.3f} | {r['nmi']:.3f} |"
        )
    ref = run_worker("reference-iteration", args)
    ratio = ref["best_iteration"] / ref["forward_seconds"]
    lines += [
        "",
        "Reference protocol (CNN, 60,000 training images): iteration "
        f"{ref['best_iteration']:.2f} s (best of {len(ref['iteration_seconds'])}), bare forward "
        f"pass {ref['forward_seconds']:.2f} s, ratio {ratio:.2f}.",
    ]
    if not args.skip_memmap:
        with tempfile.TemporaryDirectory() as folder:
            rng = np.random.default_rng(0)
            sizes = {}
            for n in (100_000, 1_000_000):
                path = Path(folder) / f"x{n}.npy"
                array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 784))
                for start in range(0, n, 100_000):
                    stop = min(start + 100_000, n)
                    array[start:stop] = rng.integers(0, 256, (stop - start, 784), dtype=np.uint8)
                array.flush()
                del array
                sizes[n] = run_worker(f"memmap-{path}", args)
        lines += [
            "",
            "Memory-mapped uint8 .npy, network='linear', 3 iterations: peak anonymous memory "
            + ", ".join(
                f"N={n:,}: {r['anon_peak_mib']:.0f} MiB ({r['seconds']:.1f} s)"
                for n, r in sizes.items()
            )
            + ".",
        ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
