"""Checkpoints of the loop, and resuming from them with the same result.

With ``NeuralKMeans(checkpoint_dir=DIR)``, every iteration ends by writing the loop's
whole state to ``DIR/checkpoint.safetensors``: the centroids, the labels, the
network's weights, the optimiser's state, the numpy and torch random states, the
iteration, the history and the fitted-so-far attributes, with a fingerprint of the
data and the parameters. The file is the container of :mod:`neural_kmeans.serialization`
(safetensors + a JSON header + a SHA-256 digest; no pickle) and is written atomically:
a temporary file, flushed to disk, renamed over the previous checkpoint. A crash at
any moment leaves the previous iteration's checkpoint or the new one, whole.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from neural_kmeans import distributed
from neural_kmeans.serialization import (
    history_from_json,
    network_to_json,
    params_from_json,
    params_to_json,
    read_container,
    store_history,
    write_container,
)

if TYPE_CHECKING:
    from neural_kmeans.estimator import NeuralKMeans

CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "neural-kmeans-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
#: Parameters that may differ on resume: they change neither the state nor the path.
RESUME_FREE_PARAMS = ("verbose", "callbacks", "checkpoint_dir", "max_iter")
#: Samples read to fingerprint the data (evenly spaced, first and last included).
FINGERPRINT_ROWS = 257


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

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class ResumeState:
    """The content of a checkpoint, read and checked against the fit that resumes it."""

    header: dict
    tensors: dict[str, torch.Tensor]

    @property
    def iteration(self) -> int:
        return int(self.header["iteration"])

    @property
    def done(self) -> bool:
        return bool(self.header["done"])

    @property
    def initial_centers(self) -> np.ndarray:
        return self.tensors["initial_centers_"].numpy()


# ----------------------------------------------------------------------- public API
def checkpoint_path(directory: str | os.PathLike) -> Path:
    """The checkpoint file inside ``directory``."""
    return Path(directory) / CHECKPOINT_FILE


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a checkpoint file."""
    return checkpoint_path(directory).is_file()


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
    """What a checkpoint holds, for display: iteration, done, parameters, data shape.

    Returns
    -------
    dict
        ``iteration``, ``done``, ``converged``, ``params`` (JSON form, see
        :func:`~neural_kmeans.serialization.params_to_json`), ``data`` (``shape``,
        ``dtype``, ``sha256_sampled``), ``package_version``, ``written``.
    """
    header, _ = read_checkpoint(directory)
    keys = ("iteration", "done", "converged", "params", "data", "package_version", "written")
    return {key: header.get(key) for key in keys}


def estimator_from_checkpoint(
    directory: str | os.PathLike, *, network: Any = None, cls: type | None = None
) -> NeuralKMeans:
    """A new, unfitted estimator with the parameters of the checkpoint in ``directory``.

    ``estimator_from_checkpoint(DIR).fit(X, resume=True)`` continues the interrupted
    fit without restating its parameters (callbacks, which are code, are not saved;
    a custom network factory must be given again as ``network``).
    """
    if cls is None:
        from neural_kmeans.estimator import NeuralKMeans

        cls = NeuralKMeans
    header, tensors = read_checkpoint(directory)
    if isinstance(header["params"].get("network"), dict) and not callable(network):
        raise CheckpointError(
            f"the checkpoint in {directory} was written with the custom network factory "
            f"{header['params']['network']['factory']}; pass it as network=factory"
        )
    params = params_from_json(header["params"], tensors, network)
    params["checkpoint_dir"] = os.fspath(directory)
    return cls(**params)


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
    estimator : NeuralKMeans
        Its parameters are already validated and ``n_features_in_``,
        ``image_shape_``, the resolved network, the dtype and the device set.
    data : numpy.ndarray
        The validated samples (fingerprinted: a few rows are read).
    resume : bool
        Continue from the checkpoint in ``estimator.checkpoint_dir`` (which must
        exist and match the data and parameters), else start afresh (and then the
        folder must not hold a checkpoint, which would be lost).

    Raises
    ------
    CheckpointError
        The folder cannot be created or written; resuming without a checkpoint, or
        from one of other data, other parameters, or a damaged one; starting afresh
        over an existing checkpoint.
    """

    def __init__(self, estimator: NeuralKMeans, data: np.ndarray, resume: bool) -> None:
        self.directory = Path(estimator.checkpoint_dir)
        self.path = self.directory / CHECKPOINT_FILE
        self.data = data_fingerprint(data)
        self.params, self.param_tensors = params_to_json(estimator.get_params(deep=False))
        self.fitted = _fitted_record(estimator)
        self.writer = distributed.rank_and_size()[0] == 0
        self.signal_number: int | None = None
        self.resumed: ResumeState | None = None
        if resume:
            header, tensors = read_checkpoint(self.directory)
            self._check_matches(header, tensors)
            self.resumed = ResumeState(header, tensors)
        elif self.path.exists():
            raise CheckpointError(
                f"{self.directory} already holds a checkpoint ({self._describe()}); pass "
                "resume=True to continue it, or delete it "
                "(neural_kmeans.checkpoint.remove_checkpoint) or choose another "
                "checkpoint_dir to start afresh"
            )
        if self.writer:
            self._check_writable()

    # ------------------------------------------------------------------ writing
    def save(
        self,
        estimator: NeuralKMeans,
        iteration: int,
        centroids: torch.Tensor,
        labels: torch.Tensor,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
        done: bool,
    ) -> None:
        """Write the state at the end of ``iteration`` (atomically; rank 0 only)."""
        if not self.writer:
            return
        tensors = dict(self.param_tensors)
        tensors["centroids"] = centroids
        tensors["labels"] = labels
        tensors["initial_centers_"] = torch.as_tensor(np.asarray(estimator.initial_centers_))
        tensors["rng.torch"] = torch.get_rng_state()
        device = estimator.device_
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        for key, value in network.state_dict().items():
            tensors[f"network.{key}"] = value
        optimizer_json: dict[str, dict[str, Any]] = {}
        for index, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{index}.{key}"] = value
                else:
                    optimizer_json.setdefault(str(index), {})[key] = value
        history = store_history(estimator.history_, tensors)
        header = {
            "iteration": iteration,
            "done": bool(done),
            "converged": bool(estimator.converged_),
            "params": self.params,
            "data": self.data,
            "fitted": self.fitted,
            "history": history,
            "numpy_rng": rng.bit_generator.state,
            "optimizer_state": optimizer_json,
        }
        try:
            write_container(
                self.path, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, header, tensors
            )
        except OSError as problem:
            raise CheckpointError(
                f"cannot write the checkpoint of iteration {iteration} to {self.path}: {problem}"
            ) from problem

    # ---------------------------------------------------------------- resuming
    def restore(
        self,
        estimator: NeuralKMeans,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Put the checkpoint's state into the fit: network, optimiser, random states.

        Call it after building the network and the optimiser (which draw from the
        torch generator) and before the first iteration.

        Returns
        -------
        centroids : torch.Tensor (K, d) float64 on the fit's device
        labels : torch.Tensor (n,) int64 — the last iteration's assignment
        first : int
            The next iteration to run (past ``max_iter`` when the fit was done).
        """
        state = self.resumed
        if state is None:
            raise CheckpointError("restore() called without a checkpoint to resume")
        header, tensors = state.header, state.tensors
        device = estimator.device_
        prefix = "network."
        weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            network.load_state_dict(weights, strict=True)
            _load_optimizer_state(optimizer, tensors, header["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as problem:
            raise CheckpointError(
                f"the checkpoint in {self.directory} does not fit this fit's network or "
                f"optimiser: {problem}"
            ) from None
        torch.set_rng_state(tensors["rng.torch"])
        if device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        rng.bit_generator.state = header["numpy_rng"]
        estimator.history_ = history_from_json(header["history"], tensors.get("history.centroids"))
        estimator.converged_ = bool(header["converged"])
        centroids = tensors["centroids"].to(device=device, dtype=torch.float64)
        labels = tensors["labels"].to(torch.int64)
        first = estimator.max_iter + 1 if state.done else state.iteration + 1
        return centroids, labels, first

    # ------------------------------------------------------------ interruptions
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
            "resume=True), or neural_kmeans.checkpoint.estimator_from_checkpoint"
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
        state = "finished" if header["done"] else "unfinished"
        return f"{state}, iteration {header['iteration']}"


@contextlib.contextmanager
def interrupt_handlers(checkpoints: FitCheckpoints | None) -> Iterator[None]:
    """:meth:`FitCheckpoints.interrupt_handlers`, or nothing without checkpoints."""
    if checkpoints is None:
        yield
    else:
        with checkpoints.interrupt_handlers():
            yield


def _fitted_record(estimator: NeuralKMeans) -> dict:
    image_shape = estimator.image_shape_
    return {
        "n_features_in_": int(estimator.n_features_in_),
        "image_shape_": None if image_shape is None else list(image_shape),
        "network": network_to_json(estimator._network_name),
        "dtype": str(estimator._dtype).removeprefix("torch."),
        "device": estimator.device_.type,
    }


def _load_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], plain: dict
) -> None:
    """Load the optimiser's per-parameter state (its hyper-parameters stay this fit's)."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = tensor
    for index, values in plain.items():
        state.setdefault(int(index), {}).update(values)
    full = optimizer.state_dict()
    full["state"] = state
    optimizer.load_state_dict(full)
    # Keep each moment in its parameter's memory layout, as a fresh run makes them.
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for key, value in optimizer.state.get(parameter, {}).items():
                if (
                    key != "step"
                    and isinstance(value, torch.Tensor)
                    and (value.shape == parameter.shape)
                ):
                    optimizer.state[parameter][key] = torch.empty_like(parameter).copy_(value)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "<" + ", ".join(f"{k} {v}" for k, v in value.items()) + ">"
    return repr(value)
