"""Batches of samples for the network: the data is read in place, never copied whole."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class SampleBatches:
    """Iterate over samples as float tensors in the network's input layout.

    Parameters
    ----------
    X : numpy.ndarray of shape (n, ...)
        The samples (memory-mapped arrays work: rows are read batch by batch).
        uint8 data is scaled to [0, 1] per batch.
    input_shape : tuple
        One sample's shape as the network takes it: (c, h, w) or (d,).
    dtype : torch.dtype
        Floating type of the batches.
    device : torch.device
        Where the batches go.
    """

    def __init__(
        self,
        X: np.ndarray,
        input_shape: tuple[int, ...],
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.flat = X.reshape(X.shape[0], -1)
        self.input_shape = tuple(input_shape)
        self.dtype = dtype
        self.device = device
        self.scale = 1.0 / 255.0 if X.dtype == np.uint8 else 1.0

    @property
    def n_samples(self) -> int:
        return self.flat.shape[0]

    @property
    def n_features(self) -> int:
        return self.flat.shape[1]

    def flat_batch(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` as a (b, d) float tensor on the device, scaled."""
        return self._to_tensor(self.flat[start:stop])

    def rows(self, indices: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The rows at ``indices`` (any order) as a (b, d) float tensor on the device,
        scaled: random mini-batches, read from a memory-mapped array as they are drawn."""
        index = indices.numpy() if isinstance(indices, torch.Tensor) else np.asarray(indices)
        return self._to_tensor(self.flat[index])

    def _to_tensor(self, rows: np.ndarray) -> torch.Tensor:
        if not (rows.flags.c_contiguous and rows.flags.writeable):
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
        """Yield ``(offset, rows)`` with rows a (b, d) float tensor, for ``start:stop``."""
        stop = self.n_samples if stop is None else stop
        for offset in range(start, stop, batch_size):
            yield offset, self.flat_batch(offset, min(offset + batch_size, stop))

    def mean_and_scale(self, batch_size: int) -> tuple[torch.Tensor, float]:
        """Per-feature mean (d,) and the root-mean-square distance to it (a scalar)."""
        total = torch.zeros(self.n_features, dtype=torch.float64, device=self.device)
        squares = torch.zeros((), dtype=torch.float64, device=self.device)
        for _, rows in self(batch_size):
            rows64 = rows.double()
            total += rows64.sum(dim=0)
            squares += (rows64 * rows64).sum()
        mean = total / self.n_samples
        variance = squares / self.n_samples - (mean * mean).sum()
        scale = float(variance.clamp(min=0).sqrt())
        return mean.to(self.dtype), scale if scale > 0 else 1.0
