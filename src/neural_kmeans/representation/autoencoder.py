"""Step 1 of ``features="learned"``, first stage: an autoencoder squeezes every sample
into a short code (an MLP ``d → 500 → 500 → 2000 → 10`` and its mirror, as DEC and N2D
use), whose neighbour graph (:mod:`.neighbours`) UMAP then lays out (:mod:`.layout`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise

import torch
from torch import nn

from neural_kmeans.core import progress

#: Hidden layer widths of the autoencoder's encoder (the decoder mirrors them).
AUTOENCODER_HIDDEN: tuple[int, ...] = (500, 500, 2000)
#: Width of the code.
AUTOENCODER_CODES = 10


class Autoencoder(nn.Module):
    """An MLP autoencoder ``d → hidden... → n_codes → ...hidden → d`` with ReLU units.

    Parameters
    ----------
    n_features : int
        Width ``d`` of the flat input rows.
    hidden : sequence of int
        Widths of the encoder's hidden layers; the decoder takes them in reverse.
    n_codes : int
        Width of the code (linear, no activation).
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int] = AUTOENCODER_HIDDEN,
        n_codes: int = AUTOENCODER_CODES,
    ) -> None:
        super().__init__()
        widths = [int(n_features), *(int(h) for h in hidden), int(n_codes)]
        self.encoder = _mlp(widths)
        self.decoder = _mlp(widths[::-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct rows ``x`` of shape (b, d)."""
        return self.decoder(self.encoder(x))


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    layers = [part for pair in pairwise(widths) for part in (nn.Linear(*pair), nn.ReLU())]
    return nn.Sequential(*layers[:-1])


def use_bfloat16(device: torch.device) -> bool:
    """Whether to train in bfloat16 autocast on ``device``: a CUDA GPU that supports it,
    or a CPU with native bfloat16 matrix units (oneDNN), where it is 2-3x faster.

    ``NEURAL_KMEANS_BFLOAT16=0`` in the environment turns it off everywhere (results
    then do not depend on whether the processor has bfloat16 units).
    """
    if os.environ.get("NEURAL_KMEANS_BFLOAT16", "").strip().lower() in ("0", "false", "off"):
        return False
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except Exception:  # an old or unusual build: stay in float32
            return False
    return False


def train_autoencoder(
    read: Callable[[torch.Tensor], torch.Tensor],
    n_samples: int,
    n_features: int,
    device: torch.device,
    *,
    hidden: Sequence[int] = AUTOENCODER_HIDDEN,
    n_codes: int = AUTOENCODER_CODES,
    epochs: float = 10.0,
    min_steps: int = 500,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    bfloat16: bool = False,
    generator: torch.Generator,
    verbose: int = 0,
) -> tuple[Autoencoder, list[float]]:
    """Train an :class:`Autoencoder` with Adam and the mean squared error.

    Parameters
    ----------
    read : callable
        ``read(indices)`` gives those samples as flat float rows (b, d) on ``device``,
        scaled to about unit size (mini-batches are read as they are drawn, so the data
        is never copied whole).
    n_samples, n_features : int
    device : torch.device
        Where the autoencoder trains.
    hidden, n_codes : see :class:`Autoencoder`
    epochs : float, default=10
        Passes over the data; at least ``min_steps`` mini-batches are taken in all,
        so that small data sets are trained enough.
    batch_size : int, default=256
    learning_rate : float, default=1e-3
    bfloat16 : bool, default=False
        Run the forward pass in bfloat16 autocast (see :func:`use_bfloat16`).
    generator : torch.Generator
        Draws the mini-batches (on the CPU); the weights come from torch's global
        generator, which the caller seeds.
    verbose : int, default=0
        Draw a progress bar of the mini-batches (with the last epoch's loss) when positive.

    Returns
    -------
    autoencoder : Autoencoder
        In eval mode.
    losses : list of float
        The mean training loss of each epoch.
    """
    model = Autoencoder(n_features, hidden, n_codes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps_per_epoch = math.ceil(n_samples / batch_size)
    total_steps = max(math.ceil(epochs * steps_per_epoch), min_steps)
    losses: list[float] = []
    model.train()
    step = 0
    shown = progress.bar(total_steps, "autoencoder", enabled=bool(verbose), unit="batch")
    while step < total_steps:
        order = torch.randperm(n_samples, generator=generator)
        running, seen = torch.zeros((), device=device), 0
        for start in range(0, n_samples, batch_size):
            if step >= total_steps:
                break
            batch = read(order[start : start + batch_size])
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
                reconstruction = model(batch)
            loss = nn.functional.mse_loss(reconstruction.float(), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach() * batch.shape[0]
            seen += batch.shape[0]
            step += 1
            shown.update(1)
        losses.append(float(running) / max(seen, 1))
        shown.set_postfix_str(f"epoch {len(losses)}, loss {losses[-1]:.5f}", refresh=False)
    shown.close()
    return model.eval(), losses


def encode(
    encoder: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[torch.Tensor], n: int
) -> torch.Tensor:
    """The outputs (n, width) float32 of ``encoder`` (a module or method in eval mode) on
    the n rows the ``batches`` give, in order: the autoencoder's codes, or a network's
    hidden features. Each batch's are written into one tensor as they come (no second
    copy: 1,568 features of 70,000 images take 0.4 GB)."""
    codes, offset = None, 0
    with torch.no_grad():
        for rows in batches:
            batch = encoder(rows)
            if codes is None:
                codes = torch.empty((n, batch.shape[1]), dtype=torch.float32, device=batch.device)
            codes[offset : offset + len(batch)] = batch
            offset += len(batch)
    return codes
