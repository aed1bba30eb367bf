"""Data-parallel runs with ``torch.distributed``: each process labels its shard.

Every process holds the same network (trained identically from the same seed on the
same K centroids); each labels a contiguous shard of the samples, and the
per-cluster sums, counts and squared norms are all-reduced, so step 4 gives the
same centroids everywhere and the clustering equals a single process's.
Launched with ``torchrun``, the environment variables it sets are enough.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from neural_kmeans.core.assignment import Assignment


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_size() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 when not distributed)."""
    if not is_distributed():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def init_from_environment(timeout_seconds: float = 300.0) -> bool:
    """Join the process group that ``torchrun`` describes in the environment.

    Does nothing (and returns False) when ``WORLD_SIZE`` is absent or 1. The backend
    is NCCL when CUDA is present, else gloo; each process takes the GPU of its
    ``LOCAL_RANK``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if dist.is_initialized():
        return True
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_seconds))
    return True


def leave() -> None:
    """Leave the process group, if this process joined one.

    The processes first wait for each other: a gloo process group destroyed while a
    peer still talks to it aborted the process at exit ("terminate called without an
    active exception"), about one run in three.
    """
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        except RuntimeError:  # a peer is gone already; leave anyway
            pass
        dist.destroy_process_group()


def shard_bounds(n_samples: int, rank: int, size: int) -> tuple[int, int]:
    """Start and stop of rank's contiguous shard of ``n_samples`` (sizes differ by ≤ 1)."""
    base, extra = divmod(n_samples, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def sum_over_processes(value: float) -> float:
    """``value`` summed over the process group's processes (itself when alone)."""
    if not is_distributed():
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_communication_device())
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total.item())


def _communication_device() -> torch.device:
    """NCCL's tensors live on this process's GPU, gloo's on the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def combine_assignments(local: Assignment, n_samples: int) -> Assignment:
    """All-reduce the shards' sums, counts and norms; all-gather their labels.

    Parameters
    ----------
    local : Assignment
        This rank's pass over its shard (``labels`` of shape (shard,)).
    n_samples : int
        Total number of samples over all ranks.

    Returns
    -------
    Assignment
        The whole data's: labels (n_samples,), sums (K, d), counts (K,), norm, and the
        inertia when the shards measured theirs.
    """
    size = dist.get_world_size()
    device = _communication_device()
    # Copies: the all-reduce works in place, and ``local`` is the next pass's ``previous``.
    sums, counts, weights = (
        t.to(device, copy=True) for t in (local.sums, local.counts, local.weights)
    )
    norm = torch.tensor(
        [local.squared_norm, local.inertia or 0.0], dtype=torch.float64, device=device
    )
    for tensor in (sums, counts, weights, norm):
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    bounds = [shard_bounds(n_samples, r, size) for r in range(size)]
    padded = torch.full((bounds[0][1],), -1, dtype=torch.int64, device=device)
    padded[: local.labels.shape[0]] = local.labels.to(device)
    gathered = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(gathered, padded)
    labels = torch.cat(
        [part[: stop - start] for part, (start, stop) in zip(gathered, bounds, strict=True)]
    ).cpu()
    return Assignment(
        labels=labels,
        sums=sums.to(local.sums.device),
        counts=counts.to(local.counts.device),
        squared_norm=float(norm[0]),
        weights=weights.to(local.weights.device),
        inertia=None if local.inertia is None else float(norm[1]),
    )
