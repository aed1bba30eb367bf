"""The samples as the loop reads them: batches of float rows.

Dense arrays (memory-mapped ones included) and scipy sparse rows (CSR) are read a
batch at a time; uint8 data is scaled to [0, 1] per batch; optional per-sample
weights travel with the rows. An in-memory array that needs converting (uint8, or
another float type than the network's) can be converted once instead
(:meth:`SampleBatches.keep_float_copy`): the batches are then views of that copy, and
the passes of every iteration skip the conversion. Memory-mapped and sparse data are
never copied whole.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

import numpy as np
import scipy.sparse
import torch

#: A batch holds at most this many values (64 MiB in float32): wide samples (large
#: images, sparse rows made dense) come in fewer rows than asked for.
MAX_BATCH_VALUES = 1 << 24

#: :meth:`SampleBatches.squared_norm` reads batches of about this many values.
NORM_BATCH_VALUES = 1 << 20

#: The largest float copy :meth:`SampleBatches.keep_float_copy` makes (MNIST-70k in
#: float32: 220 MB), and the share of the memory still available it may take.
FLOAT_COPY_MAX_BYTES = 1 << 30
FLOAT_COPY_MAX_SHARE_OF_AVAILABLE = 0.25

_NUMPY_TYPES = {torch.float32: np.float32, torch.float64: np.float64}


class SampleBatches:
    """Iterate over samples as float tensors in the network's input layout.

    Parameters
    ----------
    X : numpy.ndarray of shape (n, ...) or scipy sparse matrix or array of shape (n, d)
        The samples (memory-mapped arrays work: rows are read batch by batch; sparse
        rows are made dense a batch at a time). uint8 data is scaled to [0, 1] per batch.
    input_shape : tuple
        One sample's shape as the network takes it: (c, h, w) or (d,).
    dtype : torch.dtype
        Floating type of the batches.
    device : torch.device
        Where the batches go.
    weights : numpy.ndarray of shape (n,), optional
        Non-negative weight of each sample (``sample_weight``); None weighs all alike.
    """

    def __init__(
        self,
        X: np.ndarray | scipy.sparse.sparray,
        input_shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
        weights: np.ndarray | None = None,
    ) -> None:
        self.sparse = scipy.sparse.issparse(X)
        self.flat = scipy.sparse.csr_array(X) if self.sparse else X.reshape(X.shape[0], -1)
        self.input_shape = tuple(input_shape)
        self.dtype = dtype
        self.device = device
        self.scale = 1.0 / 255.0 if X.dtype == np.uint8 else 1.0
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self._copy: torch.Tensor | None = None
        self._squared_norms: dict[tuple[int, int], torch.Tensor] = {}

    def keep_float_copy(self, max_bytes: int = FLOAT_COPY_MAX_BYTES) -> bool:
        """Convert the rows once, as the batches would give them, and serve the batches as
        views of that copy from now on. Only for an in-memory dense array on the CPU that
        needs converting, whose copy takes at most ``max_bytes`` and a quarter of the
        memory still available; returns whether the copy was made. The batches hold the
        same values either way."""
        if self._copy is not None:
            return True
        if self.sparse or self.memory_mapped or self.device.type != "cpu":
            return False
        nbytes = self.n_samples * self.n_features * self.dtype.itemsize
        same = self.flat.dtype == _NUMPY_TYPES.get(self.dtype)
        if same and self.scale == 1.0 and self.flat.flags.c_contiguous:
            return False  # the batches are views of the caller's array already
        if nbytes > min(max_bytes, FLOAT_COPY_MAX_SHARE_OF_AVAILABLE * _available_bytes()):
            return False
        self._copy = self._to_tensor(self.flat)
        return True

    @property
    def memory_mapped(self) -> bool:
        """Whether the rows are read from a memory-mapped file (a ``numpy.memmap``, or a
        view of one: validation hands on plain arrays that still point into the map)."""
        return not self.sparse and is_memory_mapped(self.flat)

    @property
    def n_samples(self) -> int:
        return self.flat.shape[0]

    @property
    def n_features(self) -> int:
        return self.flat.shape[1]

    def flat_batch(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` as a (b, d) float tensor on the device, scaled (a view of
        the float copy, when one is kept: read it, do not write to it)."""
        if self._copy is not None:
            return self._copy[start:stop]
        return self._to_tensor(self.flat[start:stop])

    def squared_norm(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The (weighted) sum of ``||x||²`` over the rows ``start:stop``, a float64 scalar
        on the device: measured in one pass the first time, then remembered (it does not
        change from one iteration to the next)."""
        stop = self.n_samples if stop is None else stop
        if (start, stop) not in self._squared_norms and self.sparse:  # its stored values
            part = self.flat[start:stop].astype(np.float64)
            squares = np.asarray(part.multiply(part).sum(axis=1)).ravel() * self.scale**2
            weights = None if self.weights is None else self.weights[start:stop]
            total = squares.sum() if weights is None else weights @ squares
            self._squared_norms[(start, stop)] = torch.tensor(total, device=self.device)
        if (start, stop) not in self._squared_norms:
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            batch = max(1, NORM_BATCH_VALUES // max(self.n_features, 1))
            for offset, rows in self(batch, start, stop):
                weights = self.weight_batch(offset, offset + rows.shape[0], torch.float64)
                if weights is None:
                    total += torch.linalg.vector_norm(rows, dtype=torch.float64) ** 2
                else:
                    total += weights @ (rows.double() ** 2).sum(dim=1)
            self._squared_norms[(start, stop)] = total
        return self._squared_norms[(start, stop)]

    def rows(self, indices: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The rows at ``indices`` (any order) as a (b, d) float tensor on the device,
        scaled: random mini-batches, read from a memory-mapped array as they are drawn."""
        index = indices.numpy() if isinstance(indices, torch.Tensor) else np.asarray(indices)
        if self._copy is not None:
            return self._copy[torch.as_tensor(index)]
        return self._to_tensor(self.flat[index])

    def array_rows(
        self, indices: slice | np.ndarray, dtype: type
    ) -> np.ndarray | scipy.sparse.sparray:
        """The rows at ``indices`` as a new numpy array of ``dtype``, scaled like the
        batches (sparse rows stay sparse): what scikit-learn's functions are given."""
        if self._copy is not None and _NUMPY_TYPES.get(self._copy.dtype) == dtype:
            return np.array(self._copy.numpy()[indices])
        rows = self.flat[indices]
        rows = rows.astype(dtype) if self.sparse else np.array(rows, dtype=dtype)
        if self.scale != 1.0:
            rows = rows * rows.dtype.type(self.scale)
        return rows

    def weight_batch(self, start: int, stop: int, dtype: torch.dtype) -> torch.Tensor | None:
        """The weights of rows ``start:stop`` (b,) on the device, or None when unweighted."""
        if self.weights is None:
            return None
        return torch.as_tensor(self.weights[start:stop], dtype=dtype, device=self.device)

    def _to_tensor(self, rows: np.ndarray) -> torch.Tensor:
        if self.sparse:
            rows = rows.toarray()
        elif not (rows.flags.c_contiguous and rows.flags.writeable):
            rows = np.array(rows)  # one batch: read-only or strided data is copied here
        chunk = torch.from_numpy(rows)
        chunk = chunk.to(self.device, non_blocking=True).to(self.dtype)
        if self.scale != 1.0:
            chunk.mul_(self.scale)
        return chunk

    def as_input(self, flat: torch.Tensor) -> torch.Tensor:
        """Reshape (b, d) rows to the network's (b, *input_shape) layout."""
        return flat.reshape(flat.shape[0], *self.input_shape)

    def __call__(
        self, batch_size: int, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(offset, rows)`` with rows a (b, d) float tensor, for ``start:stop``
        (at most ``batch_size`` rows and :data:`MAX_BATCH_VALUES` values a batch)."""
        stop = self.n_samples if stop is None else stop
        batch_size = max(1, min(batch_size, MAX_BATCH_VALUES // max(1, self.n_features)))
        for offset in range(start, stop, batch_size):
            yield offset, self.flat_batch(offset, min(offset + batch_size, stop))

    def centring_offset(self, batch_size: int) -> torch.Tensor:
        """The mean sample (d,) that scikit-learn's ``KMeans`` subtracts from dense data:
        numpy's mean of the scaled rows in memory (the same bits), the batches' mean for
        a memory-mapped array; zero for sparse rows, which ``KMeans`` does not centre."""
        if self.sparse:
            return torch.zeros(self.n_features, dtype=torch.float64)
        if self.memory_mapped:
            return self.moments(batch_size, weighted=False)[0].cpu()
        dtype = np.float64 if self.flat.dtype == np.float64 else np.float32
        rows = np.asarray(self.flat, dtype=dtype)
        if self.scale != 1.0:
            rows = rows * dtype(self.scale)
        return torch.from_numpy(rows.mean(axis=0).astype(np.float64))

    def mean_and_scale(self, batch_size: int) -> tuple[torch.Tensor, float]:
        """Per-feature (weighted) mean (d,) and the root-mean-square distance to it (a
        scalar): what a fixed standardisation layer needs."""
        mean, variance = self.moments(batch_size)
        scale = variance**0.5
        return mean.to(self.dtype), scale if scale > 0 else 1.0

    def moments(self, batch_size: int, *, weighted: bool = True) -> tuple[torch.Tensor, float]:
        """The per-feature mean (d,) float64 and the total variance (the sum over features
        of each feature's variance), weighted by the samples' weights when ``weighted``."""
        total = torch.zeros(self.n_features, dtype=torch.float64, device=self.device)
        squares = torch.zeros((), dtype=torch.float64, device=self.device)
        mass = 0.0
        for offset, rows in self(batch_size):
            rows64 = rows.double()
            weights = self.weight_batch(offset, offset + rows.shape[0], torch.float64)
            if weights is None or not weighted:
                total += rows64.sum(dim=0)
                squares += (rows64 * rows64).sum()
                mass += rows.shape[0]
            else:
                total += weights @ rows64
                squares += weights @ (rows64 * rows64).sum(dim=1)
                mass += float(weights.sum())
        mean = total / max(mass, np.finfo(np.float64).tiny)
        variance = squares / max(mass, np.finfo(np.float64).tiny) - (mean * mean).sum()
        return mean, float(variance.clamp(min=0))


def is_memory_mapped(array: object) -> bool:
    """Whether ``array`` or an array it is a view of is a ``numpy.memmap``, or its memory a
    ``mmap``."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def _available_bytes() -> float:
    """The memory still available (Linux's MemAvailable); unknown elsewhere: no limit."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float("inf")
