"""Speed and memory on MNIST-70k: neural-kmeans (linear, mlp, cnn) against K-means.

Each method runs in its own subprocess (so its peak memory is its own), one after the
other on the same machine, at its default parameters and default threads, and the table
gives ratios to scikit-learn KMeans(n_init=1) measured in the same run. Also measured,
side by side:

- one Lloyd iteration of scikit-learn's KMeans on MNIST-70k (the difference between
  11 and 1 iterations from the same centres, over 10) against one iteration of the
  linear network;
- the reference protocol's iteration (CNN, 60,000 training images) against a bare
  forward pass of the same network over the same images, and the share of images on
  which the frozen network (what the loop runs) agrees with the plain float32 one;
- a memory-mapped uint8 file of 1,000,000 x 784 against one of 100,000: the process's
  peak anonymous memory (RssAnon) must not grow with N.

The first lines name the CPU, its instruction sets (AVX2, AVX-512, AMX, NEON), the one
torch uses, and the oneDNN and BLAS libraries. ``--isa avx2`` caps torch, oneDNN and
the BLAS libraries at AVX2 in every worker, to measure an AVX2 CPU's code path on an
AVX-512 one (the same code an AVX2 CPU runs; its clock and caches stay this CPU's).

Usage::

    python benchmarks/speed.py --data-dir ../shared/data [--threads 1] [--isa avx2]
        [--skip-memmap] [--out table.md]
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
    if method == "describe":
        return describe_cpu()
    if method == "reference-iteration":
        X, _ = load_dataset("mnist", "train", data_dir=data_dir)
        model = NeuralKMeans(
            10, network="cnn", init="random", n_init=1, max_iter=3, tol=0, random_state=seed
        ).fit(X)
        # On the device the network was trained on (a GPU's network took CPU batches).
        samples = SampleBatches(X, (1, 28, 28), torch.float32, model.device_)
        samples.keep_float_copy()
        network = inference_network(model.network_, samples.device)
        frozen, eager = [], []
        started = time.perf_counter()
        with torch.inference_mode():
            for _, rows in samples(model._batch_size()):
                frozen.append(network(samples.as_input(rows)).argmax(dim=1))
        if samples.device.type == "cuda":
            torch.cuda.synchronize()
        forward = time.perf_counter() - started
        with torch.inference_mode():  # the plain float32 network, eager, as trained
            for _, rows in samples(model._batch_size()):
                eager.append(model.network_.eval()(samples.as_input(rows)).argmax(dim=1))
        agree = float((torch.cat(frozen) == torch.cat(eager)).double().mean())
        iterations = [r["seconds"] for r in model.history_]
        result.update(
            iteration_seconds=iterations,
            best_iteration=min(iterations),
            forward_seconds=forward,
            agreement=agree,
            batch_size=model._batch_size(),
        )
        return result
    if method == "lloyd-iteration":
        from sklearn.cluster import KMeans

        X, _ = load_dataset("mnist", "all", data_dir=data_dir)
        data = X.reshape(len(X), -1) / 255.0
        centres = data[np.random.RandomState(seed).choice(len(data), 10, replace=False)]
        seconds = {}
        for n_iter in (1, 11, 1, 11):
            started = time.perf_counter()
            KMeans(10, init=centres, n_init=1, max_iter=n_iter, tol=0).fit(data)
            elapsed = time.perf_counter() - started
            seconds[n_iter] = min(seconds.get(n_iter, elapsed), elapsed)
        result.update(per_iteration=(seconds[11] - seconds[1]) / 10)
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
            model = NeuralKMeans(10, network=network, random_state=seed).fit(X)  # defaults
            labels, n_iter = model.labels_, model.n_iter_
            result["median_iteration"] = float(np.median([r["seconds"] for r in model.history_]))
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


#: What ``--isa avx2`` sets in the workers: torch's kernels, oneDNN's, MKL's and
#: OpenBLAS's, each capped at AVX2.
AVX2_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}


def cpu_name_and_flags() -> tuple[str, set[str]]:
    """The CPU's model name and its feature flags (Linux's /proc/cpuinfo, first core;
    elsewhere the platform's name and no flags)."""
    name, flags = None, None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name is None:
                name = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and flags is None:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags or set()


def describe_cpu() -> dict:
    """The CPU, its instruction sets, the one torch uses, and the libraries doing the
    arithmetic (in this process, so under the worker's environment)."""
    import re

    import torch
    from threadpoolctl import threadpool_info

    cpu, flags = cpu_name_and_flags()
    names = [
        ("AVX2", "avx2" in flags),
        ("AVX-512", "avx512f" in flags),
        ("AVX512-BF16", "avx512_bf16" in flags),
        ("VNNI", "avx512_vnni" in flags or "avx_vnni" in flags),
        ("AMX", "amx_tile" in flags),
        ("NEON", "asimd" in flags or platform.machine() in ("arm64", "aarch64")),
    ]
    onednn = re.search(r"MKL-DNN v([\d.]+)", torch.__config__.show())
    libraries = sorted(
        {f"{i.get('internal_api')} {i.get('version') or ''}".strip() for i in threadpool_info()}
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "isa": [name for name, present in names if present],
        "torch_isa": torch.backends.cpu.get_cpu_capability(),
        "onednn": onednn.group(1) if onednn else "none",
        "onednn_cap": os.environ.get("ONEDNN_MAX_CPU_ISA", "none"),
        "libraries": libraries,
        "torch_threads": torch.get_num_threads(),
    }


def run_json_worker(
    command: list[str], threads: int, what: str, extra_env: dict | None = None
) -> dict:
    """Run ``command`` (a worker printing one JSON line last) with ``threads`` threads in
    every pool (0: the default) and ``extra_env``, echo its result to stderr and return
    it."""
    env = {**os.environ, **(extra_env or {})}
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
    return run_json_worker(
        command, args.threads, method, AVX2_ENVIRONMENT if args.isa == "avx2" else None
    )


def versions() -> str:
    import sklearn
    import torch

    import neural_kmeans

    return (
        f"{cpu_name_and_flags()[0]}, {os.cpu_count()} cores; "
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
    parser.add_argument(
        "--isa",
        choices=["native", "avx2"],
        default="native",
        help="avx2: cap torch, oneDNN and BLAS at AVX2 in every worker (an AVX2 CPU's code "
        "path on an AVX-512 one)",
    )
    parser.add_argument(
        "--skip-cnn", action="store_true", help="leave the CNN on MNIST-70k out (~2 min)"
    )
    parser.add_argument("--out", default=None, help="also write the tables to this file")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data_dir, args.seed)))
        return
    cpu = run_worker("describe", args)
    methods = ["kmeans", "neural-linear", "neural-mlp"] + ([] if args.skip_cnn else ["neural-cnn"])
    try:
        import faiss  # noqa: F401

        methods.insert(1, "faiss")
    except ImportError:
        pass
    rows = {m: run_worker(m, args) for m in methods}
    lloyd = run_worker("lloyd-iteration", args)
    base = rows["kmeans"]["seconds"]
    capped = f", capped at AVX2 (--isa avx2, oneDNN cap {cpu['onednn_cap']})" * (args.isa == "avx2")
    lines = [
        f"CPU: {cpu['cpu']}, {cpu['cores']} cores; instruction sets: {', '.join(cpu['isa'])}; "
        f"torch runs {cpu['torch_isa']} code{capped}; oneDNN {cpu['onednn']}; "
        f"libraries: {', '.join(cpu['libraries'])}; torch threads {cpu['torch_threads']}.",
        "",
        f"MNIST-70k (all 70,000 images), K=10, seed {args.seed}, default parameters, "
        f"{args.threads or 'default'} thread(s) per method. {versions()}",
        "",
        "| method | wall s | × K-means | iterations | s / iteration | peak anon MiB "
        "| peak RSS MiB | ACC | NMI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method, r in rows.items():
        lines.append(
            f"| {method} | {r['seconds']:.2f} | {r['seconds'] / base:.2f} | {r['n_iter']} "
            f"| {r.get('median_iteration', r['per_iteration']):.3f} | {r['anon_peak_mib']:.0f} "
            f"| {r['max_rss_mib']:.0f} | {r['acc']:.3f} | {r['nmi']:.3f} |"
        )
    linear = rows["neural-linear"]["median_iteration"]
    lines += [
        "",
        "(s / iteration: the median iteration for the networks, wall time over iterations "
        "for the others.) One Lloyd iteration of scikit-learn's KMeans on the same data: "
        f"{lloyd['per_iteration']:.3f} s; one linear-network iteration: {linear:.3f} s "
        f"({linear / lloyd['per_iteration']:.2f}x).",
    ]
    ref = run_worker("reference-iteration", args)
    ratio = ref["best_iteration"] / ref["forward_seconds"]
    lines += [
        "",
        "Reference protocol (CNN, 60,000 training images): iteration "
        f"{ref['best_iteration']:.2f} s (best of {len(ref['iteration_seconds'])}), bare forward "
        f"pass {ref['forward_seconds']:.2f} s (batches of {ref['batch_size']}), ratio "
        f"{ratio:.2f}; the frozen network's labels agree with the plain float32 network's on "
        f"{100 * ref['agreement']:.2f} % of the images.",
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
