"""Checkpoints of the loop, and resuming from them with the same result.

With ``NeuralKMeans(checkpoint_dir=DIR)``, step 1 and then every iteration end by
writing the loop's whole state (:class:`~neural_kmeans.core.loop.LoopState`) to
``DIR/checkpoint.safetensors``: the centroids, the labels, the network's weights, the
optimiser's state, the parts' extras (the learned embedding and neighbour graph), the
last pass's per-cluster sums (single process), the torch random state, the iteration
and the history, with a fingerprint of the data and the parameters. The file is the
container of :mod:`neural_kmeans.io.container` (safetensors + a JSON header + a
SHA-256 digest; no pickle) and is written atomically: a temporary file, flushed to
disk, renamed over the previous checkpoint. A crash at any moment leaves the previous
iteration's checkpoint or the new one, whole.

``fit(X, resume=True)`` restores that state and continues; the final labels are
those of an uninterrupted run with the same seed, because every random state and the
optimiser's moments are restored exactly.

During a fit with a ``checkpoint_dir``, SIGINT (Ctrl-C) and SIGTERM no longer stop the
program at once: the current iteration finishes, its checkpoint is written, and
:class:`FitInterrupted` (a ``KeyboardInterrupt``) is raised with a message saying how
to resume. A second signal stops at once (the previous checkpoint stays intact). The
handlers are installed only for the duration of ``fit`` and only from the main
thread; the previous ones are restored afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neural_kmeans.core import distributed
from neural_kmeans.core.assignment import Assignment
from neural_kmeans.core.state import LoopState
from neural_kmeans.io.container import (
    history_from_json,
    history_to_json,
    params_from_json,
    params_to_json,
    plain,
    read_container,
    remove_stale_temporaries,
    write_container,
)

CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "neural-kmeans-checkpoint"
CHECKPOINT_FORMAT_VERSION = 2
#: Parameters that may differ on resume: they change neither the state nor the path.
RESUME_FREE_PARAMS = ("verbose", "callbacks", "checkpoint_dir", "max_iter")
#: Samples read to fingerprint the data (evenly spaced, first and last included).
FINGERPRINT_ROWS = 257
#: The state's tensors, by their name in the file.
_STATE_TENSORS = ("centroids", "means", "initial_means", "labels")
_TOTALS_TENSORS = ("sums", "counts", "weights")


class CheckpointError(ValueError):
    """A checkpoint cannot be written, read or resumed (a damaged file, other data, ...)."""


class FitInterrupted(KeyboardInterrupt):
    """A fit stopped by SIGINT or SIGTERM after writing its iteration's checkpoint.

    Attributes
    ----------
    checkpoint_dir : pathlib.Path
        Where the checkpoint is.
    iteration : int
        The last iteration done (and checkpointed).
    signal_number : int
        The signal that asked to stop (``signal.SIGINT`` or ``signal.SIGTERM``).
    """

    def __init__(
        self, message: str, *, checkpoint_dir: Path, iteration: int, signal_number: int
    ) -> None:
        super().__init__(message)
        self.checkpoint_dir = checkpoint_dir
        self.iteration = iteration
        self.signal_number = signal_number


# ----------------------------------------------------------------------- public API
def checkpoint_path(directory: str | os.PathLike) -> Path:
    """The checkpoint file inside ``directory``."""
    return Path(directory) / CHECKPOINT_FILE


def read_checkpoint(directory: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """The verified header and tensors of the checkpoint in ``directory``.

    Raises
    ------
    CheckpointError
        No checkpoint there, a damaged one, or one of another format version.
    """
    path = checkpoint_path(directory)
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint in {directory} (no {CHECKPOINT_FILE}); start the fit without "
            "resume=True, or give the checkpoint_dir of the interrupted fit"
        )
    return read_container(path, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, CheckpointError)


def checkpoint_info(directory: str | os.PathLike) -> dict:
    """What a checkpoint holds, for display: ``iteration``, ``done``, ``converged``,
    ``params`` (JSON form), ``data`` (``shape``, ``dtype``, ``sha256_sampled``),
    ``package_version``, ``written``."""
    header, _ = read_checkpoint(directory)
    keys = ("iteration", "done", "converged", "params", "data", "package_version", "written")
    return {key: header.get(key) for key in keys}


def checkpoint_params(directory: str | os.PathLike, network: Any = None) -> dict[str, Any]:
    """The constructor parameters of the checkpointed fit (``checkpoint_dir`` set to
    ``directory``); ``network`` stands for a custom network factory, which is code and
    was not saved."""
    header, tensors = read_checkpoint(directory)
    if isinstance(header["params"].get("network"), dict) and not callable(network):
        raise CheckpointError(
            f"the checkpoint in {directory} was written with the custom network factory "
            f"{header['params']['network']['factory']}; pass it as network=factory"
        )
    params = params_from_json(header["params"], tensors, network)
    params["checkpoint_dir"] = os.fspath(directory)
    return params


def remove_checkpoint(directory: str | os.PathLike) -> bool:
    """Delete the checkpoint file in ``directory`` (not the folder); True if there was one."""
    path = checkpoint_path(directory)
    existed = path.is_file()
    path.unlink(missing_ok=True)
    return existed


def data_fingerprint(data: np.ndarray) -> dict:
    """A cheap identity of the data: shape, dtype and a SHA-256 of evenly spaced rows."""
    n = data.shape[0]
    rows = np.unique(np.linspace(0, n - 1, num=min(n, FINGERPRINT_ROWS)).astype(np.int64))
    digest = hashlib.sha256(f"{data.shape}|{data.dtype}|".encode())
    digest.update(np.ascontiguousarray(data[rows]).tobytes())
    return {
        "shape": list(data.shape),
        "dtype": str(data.dtype),
        "sha256_sampled": digest.hexdigest(),
    }


# --------------------------------------------------------------------- during a fit
class FitCheckpoints:
    """A fit's checkpoints: checks done before any work, the writes, the resume.

    Parameters
    ----------
    directory : str or os.PathLike
    params : dict
        The estimator's ``get_params()``.
    data : numpy.ndarray
        The validated samples (fingerprinted: a few rows are read).
    shape : dict
        What the state's shapes follow from (features, image shape, network, dtype,
        device): a checkpoint of another shape is refused.
    resume : bool
        Continue from the checkpoint in ``directory`` (which must exist and match the
        data and parameters), else start afresh (and then the folder must not hold a
        checkpoint, which would be lost).

    Raises
    ------
    CheckpointError
        The folder cannot be created or written; resuming without a checkpoint, or
        from one of other data, other parameters, or a damaged one; starting afresh
        over an existing checkpoint.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        params: dict[str, Any],
        data: np.ndarray,
        shape: dict[str, Any],
        resume: bool,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / CHECKPOINT_FILE
        self.data = data_fingerprint(data)
        self.params, self.param_tensors = params_to_json(params)
        self.fitted = plain(shape)
        self.writer = distributed.rank_and_size()[0] == 0
        self.signal_number: int | None = None
        self.max_iter: int | None = None  # the fit's, for describing a checkpoint
        self.resumed: tuple[dict, dict[str, torch.Tensor]] | None = None
        if resume:
            header, tensors = read_checkpoint(self.directory)
            self._check_matches(header, tensors)
            self.resumed = header, tensors
        elif self.path.exists():
            raise CheckpointError(
                f"{self.directory} already holds a checkpoint ({self._describe()}); pass "
                "resume=True to continue it, or delete it "
                "(neural_kmeans.io.checkpoint.remove_checkpoint) or choose another "
                "checkpoint_dir to start afresh"
            )
        if self.writer:
            self._check_writable()

    def save(self, state: LoopState, done: bool) -> None:
        """Write ``state`` (atomically; rank 0 only)."""
        if not self.writer:
            return
        tensors = dict(self.param_tensors)
        for name in _STATE_TENSORS:
            if getattr(state, name) is not None:
                tensors[name] = getattr(state, name)
        tensors.update({f"extras.{k}": v for k, v in state.extras.items()})
        if state.totals is not None and distributed.rank_and_size()[1] == 1:
            for name in _TOTALS_TENSORS:  # the next pass re-sums the changed samples only
                tensors[f"totals.{name}"] = getattr(state.totals, name)
        tensors["rng.torch"] = torch.get_rng_state()
        # The network's device, not the centroids': the learned mode keeps its centroids
        # on the CPU while its network draws dropout on the GPU.
        devices = [p.device for p in state.network.parameters()] + [state.centroids.device]
        cuda = next((device for device in devices if device.type == "cuda"), None)
        if cuda is not None:
            tensors["rng.cuda"] = torch.cuda.get_rng_state(cuda)
        tensors.update({f"network.{k}": v for k, v in state.network.state_dict().items()})
        optimizer_json: dict[str, dict[str, Any]] = {}
        if state.optimizer is not None:
            for index, values in state.optimizer.state_dict()["state"].items():
                for key, value in values.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"optimizer.{index}.{key}"] = value
                    else:
                        optimizer_json.setdefault(str(index), {})[key] = value
        header = {
            "iteration": state.iteration,
            "max_iter": self.max_iter,
            "done": bool(done),
            "converged": bool(state.converged),
            "scale": state.scale,
            "params": self.params,
            "data": self.data,
            "fitted": self.fitted,
            "history": history_to_json(state.history, tensors),
            "info": plain(state.info),
            "optimizer_state": optimizer_json,
        }
        try:
            write_container(
                self.path, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, header, tensors
            )
        except OSError as problem:
            raise CheckpointError(
                f"cannot write the checkpoint of iteration {state.iteration} to "
                f"{self.path}: {problem}"
            ) from problem

    def restore(
        self,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer | None,
        device: torch.device,
    ) -> tuple[LoopState, bool]:
        """The checkpoint's state, with ``network``, ``optimizer`` and the random states
        set from it. Call it after building the network and the optimiser (which draw
        from the torch generator). Returns the state and whether the fit was done."""
        if self.resumed is None:
            raise CheckpointError("restore() called without a checkpoint to resume")
        header, tensors = self.resumed
        prefix = "network."
        weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            network.load_state_dict(weights, strict=True)
            if optimizer is not None:
                _load_optimizer_state(optimizer, tensors, header["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as problem:
            raise CheckpointError(
                f"the checkpoint in {self.directory} does not fit this fit's network or "
                f"optimiser: {problem}"
            ) from None
        torch.set_rng_state(tensors["rng.torch"])
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        floats = {
            name: tensors[name].to(device=device, dtype=torch.float64)
            for name in _STATE_TENSORS[:3]
        }
        state = LoopState(
            network=network,
            labels=tensors["labels"].to(torch.int64) if "labels" in tensors else None,
            scale=float(header["scale"]),
            optimizer=optimizer,
            iteration=int(header["iteration"]),
            history=history_from_json(header["history"], tensors),
            converged=bool(header["converged"]),
            extras={
                k.removeprefix("extras."): v for k, v in tensors.items() if k.startswith("extras.")
            },
            info=header["info"],
            **floats,
        )
        kept = all(f"totals.{name}" in tensors for name in _TOTALS_TENSORS)
        if kept and state.labels is not None and distributed.rank_and_size()[1] == 1:
            totals = {name: tensors[f"totals.{name}"].to(device) for name in _TOTALS_TENSORS}
            state.totals = Assignment(labels=state.labels, squared_norm=0.0, **totals)
        return state, bool(header["done"])

    @contextlib.contextmanager
    def interrupt_handlers(self) -> Iterator[None]:
        """Turn SIGINT and SIGTERM into a request to stop after the current iteration.

        Only in the main thread (signals can be handled nowhere else), and not for a
        signal the process ignores; the previous handlers are restored on leaving.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        # A signal the process ignores (a background job's SIGINT) stays ignored.
        signals = [
            n for n in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(n) != signal.SIG_IGN
        ]
        previous = {number: signal.getsignal(number) for number in signals}

        def request_stop(number: int, frame: Any) -> None:
            if self.signal_number is not None:
                raise KeyboardInterrupt(
                    f"stopped at once by a second {signal.Signals(number).name}; the "
                    f"checkpoint of the last finished iteration is in {self.directory}"
                )
            self.signal_number = number
            print(
                f"neural-kmeans: {signal.Signals(number).name} received; finishing this "
                f"iteration and writing its checkpoint to {self.directory} (send it again "
                "to stop at once)",
                file=sys.stderr,
                flush=True,
            )

        for number in signals:
            signal.signal(number, request_stop)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)

    def raise_if_interrupted(self, iteration: int) -> None:
        """Raise :class:`FitInterrupted` when a signal came (on any rank, when distributed)."""
        number = self.signal_number or 0
        if distributed.is_distributed():
            flag = torch.tensor([number], dtype=torch.int64)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            number = int(flag)
        if not number:
            return
        name = signal.Signals(number).name
        raise FitInterrupted(
            f"fit interrupted by {name} after iteration {iteration}; its state is saved in "
            f"{self.directory}. To resume, fit again with the same data and parameters: "
            f"NeuralKMeans(..., checkpoint_dir={os.fspath(self.directory)!r}).fit(X, "
            "resume=True), or NeuralKMeans.from_checkpoint"
            f"({os.fspath(self.directory)!r}).fit(X, resume=True)",
            checkpoint_dir=self.directory,
            iteration=iteration,
            signal_number=number,
        )

    # ---------------------------------------------------------------- helpers
    def _check_matches(self, header: dict, tensors: dict[str, torch.Tensor]) -> None:
        where = f"the checkpoint in {self.directory}"
        hint = "resume with the same data and parameters, or start afresh in another checkpoint_dir"
        saved = header["data"]
        if saved["shape"] != self.data["shape"] or saved["dtype"] != self.data["dtype"]:
            raise CheckpointError(
                f"{where} was written for data of shape {tuple(saved['shape'])} "
                f"({saved['dtype']}), but X has shape {tuple(self.data['shape'])} "
                f"({self.data['dtype']}); {hint}"
            )
        if saved["sha256_sampled"] != self.data["sha256_sampled"]:
            raise CheckpointError(
                f"{where} was written for other data: X has the same shape but different "
                f"values; {hint}"
            )
        differ = []
        for name in sorted(set(saved_params := header["params"]) | set(self.params)):
            if name in RESUME_FREE_PARAMS:
                continue
            mine, theirs = self.params.get(name), saved_params.get(name)
            if name == "init" and isinstance(mine, dict) and isinstance(theirs, dict):
                if torch.equal(self.param_tensors["param.init"], tensors["param.init"]):
                    continue
            elif mine == theirs:
                continue
            differ.append(f"{name}={_show(theirs)} there, {_show(mine)} here")
        if differ:
            raise CheckpointError(
                f"{where} was written with other parameters: {'; '.join(differ)}; {hint}"
            )
        if header["fitted"] != self.fitted:
            raise CheckpointError(
                f"{where} was written for a model of another shape ({header['fitted']}, "
                f"here {self.fitted}); {hint}"
            )

    def _check_writable(self) -> None:
        probe = self.directory / f".write-test-{os.getpid()}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
            remove_stale_temporaries(self.path)  # of a run killed while writing
        except OSError as problem:
            raise CheckpointError(
                f"cannot write checkpoints to {self.directory}: {problem}; choose a "
                "writable checkpoint_dir"
            ) from None

    def _describe(self) -> str:
        try:
            header, _ = read_checkpoint(self.directory)
        except CheckpointError as problem:
            return f"unreadable: {problem}"
        iteration, most = header["iteration"], header.get("max_iter")
        if header["done"]:
            return f"finished, iteration {iteration}"
        if most is not None and iteration >= most:
            return (
                f"finished its max_iter={most} iterations; resume=True with a larger "
                "max_iter continues it"
            )
        return f"unfinished, iteration {iteration}"


def interrupt_handlers(checkpoints: FitCheckpoints | None) -> AbstractContextManager[None]:
    """:meth:`FitCheckpoints.interrupt_handlers`, or nothing without checkpoints."""
    return contextlib.nullcontext() if checkpoints is None else checkpoints.interrupt_handlers()


def _load_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], plain_state: dict
) -> None:
    """Load the optimiser's per-parameter state (its hyper-parameters stay this fit's)."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = tensor
    for index, values in plain_state.items():
        state.setdefault(int(index), {}).update(values)
    full = optimizer.state_dict()
    full["state"] = state
    optimizer.load_state_dict(full)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "<" + ", ".join(f"{k} {v}" for k, v in value.items()) + ">"
    return repr(value)
