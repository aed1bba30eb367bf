"""Data-parallel fits with torch.distributed (gloo on 127.0.0.1) equal one process's."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.datasets import load_digits

from neural_kmeans import NeuralKMeans
from neural_kmeans.core.distributed import leave, shard_bounds

PARAMS = {"n_clusters": 10, "max_iter": 6, "random_state": 0, "init": "random"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _digits() -> np.ndarray:
    return (load_digits().images / 16.0).astype(np.float32)


def _fit_on_rank(rank: int, size: int, port: int, network: str, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size
    )
    try:
        model = NeuralKMeans(network=network, **PARAMS).fit(_digits())
        np.savez(f"{out}/rank{rank}.npz", labels=model.labels_, centers=model.cluster_centers_)
    finally:
        leave()


@pytest.mark.slow
@pytest.mark.parametrize("network", ["cnn", "mlp"])
def test_two_processes_give_the_single_process_labels(tmp_path, network):
    """Also the regression test of a process aborted at exit (SIGABRT, about one run in
    three) when gloo's group was destroyed without the peers waiting for each other."""
    single = NeuralKMeans(network=network, **PARAMS).fit(_digits())
    mp.spawn(_fit_on_rank, args=(2, _free_port(), network, str(tmp_path)), nprocs=2, join=True)
    # Not bit-identical by construction: each process runs its shard in batches of other
    # shapes (other GEMM blockings) and the cluster sums are added in another order, so
    # a float32 logit or a float64 sum may differ in its last bit; at most one sample
    # on a near-tie may change cluster, and the centres agree to float32 precision.
    for rank in range(2):
        result = np.load(tmp_path / f"rank{rank}.npz")
        assert np.mean(result["labels"] == single.labels_) >= 1 - 1 / 1000
        tolerance = 64 * np.finfo(np.float32).eps
        np.testing.assert_allclose(result["centers"], single.cluster_centers_, atol=tolerance)


@pytest.mark.parametrize("n", [0, 1, 7, 10, 1797])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_shards_cover_the_data_once(n, size):
    bounds = [shard_bounds(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    lengths = [stop - start for start, stop in bounds]
    assert max(lengths) - min(lengths) <= 1


@pytest.mark.slow
def test_torchrun_run_command_gives_the_single_process_labels(tmp_path):
    """``torchrun --nproc-per-node 2 -m neural_kmeans run`` shards the data over two
    processes; process 0 alone writes, and the clusters are one process's."""
    common = ["run", "--dataset", "digits", "--method", "cnn", "--max-iter", "4"]
    common += ["--seed", "3", "--no-kmeans", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += ["--nproc-per-node", "2", "-m", "neural_kmeans"]
    parallel = subprocess.run(
        [*launcher, *common, "--out", str(tmp_path / "two")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert parallel.returncode == 0, parallel.stderr[-2000:]
    single = subprocess.run(
        [sys.executable, "-m", "neural_kmeans", *common, "--out", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    two, one = np.load(tmp_path / "two" / "labels.npy"), np.load(tmp_path / "one" / "labels.npy")
    np.testing.assert_array_equal(two, one)
    results = json.loads((tmp_path / "two" / "results.json").read_text())
    assert results["config"]["processes"] == 2
    assert parallel.stdout.count("outputs written") == 1  # only process 0 reports
