"""Learned representations for ``features="learned"``: where the clusters are found.

Three steps, each measured on MNIST-70k (see ``benchmarks/learned.py``):

1. an autoencoder (an MLP ``d → 500 → 500 → 2000 → 10`` and its mirror, as DEC and
   N2D use) squeezes every sample into a 10-d code (:func:`train_autoencoder`);
2. the exact k-nearest-neighbour graph of the codes, from chunked matrix products
   (:func:`exact_knn`: exact, deterministic, and faster than approximate search
   in 10 dimensions);
3. UMAP lays that graph out in a few dimensions (:func:`umap_embedding`, with
   umap-learn given the graph, so it searches no neighbours itself), where the
   clusters are compact blobs that a Gaussian mixture separates.

Also here: :func:`random_affine`, the small random rotations and shifts that the
self-labelling network (:mod:`neural_kmeans.self_labelling`) sees images through.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

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
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def use_bfloat16(device: torch.device) -> bool:
    """Whether to train in bfloat16 autocast on ``device``: a CUDA GPU that supports it,
    or a CPU with native bfloat16 matrix units (oneDNN), where it is 2-3x faster."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        try:
            return bool(check()) if check is not None else False
        except Exception:  # an old or unusual build: stay in float32
            return False
    return False


def train_autoencoder(
    rows: torch.Tensor,
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
    """Train an :class:`Autoencoder` on ``rows`` with Adam and the mean squared error.

    Parameters
    ----------
    rows : torch.Tensor of shape (n, d), float32
        The samples as flat rows (on the training device), scaled to about [0, 1].
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
        Print the loss of every epoch when positive.

    Returns
    -------
    autoencoder : Autoencoder
        In eval mode.
    losses : list of float
        The mean training loss of each epoch.
    """
    n, d = rows.shape
    model = Autoencoder(d, hidden, n_codes).to(rows.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = max(math.ceil(epochs * steps_per_epoch), min_steps)
    losses: list[float] = []
    model.train()
    step, started = 0, time.perf_counter()
    while step < total_steps:
        order = torch.randperm(n, generator=generator).to(rows.device)
        running, seen = torch.zeros((), device=rows.device), 0
        for start in range(0, n, batch_size):
            if step >= total_steps:
                break
            batch = rows[order[start : start + batch_size]]
            with torch.autocast(rows.device.type, dtype=torch.bfloat16, enabled=bfloat16):
                reconstruction = model(batch)
            loss = nn.functional.mse_loss(reconstruction.float(), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach() * batch.shape[0]
            seen += batch.shape[0]
            step += 1
        losses.append(float(running) / max(seen, 1))
        if verbose:
            print(
                f"autoencoder epoch {len(losses):3d}  loss {losses[-1]:.5f}  "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    return model.eval(), losses


def encode(encoder: nn.Module, rows: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """The codes of ``rows`` (n, d) → (n, n_codes) float32, batch by batch, in float32."""
    encoder.eval()
    with torch.inference_mode():
        return torch.cat(
            [encoder(rows[s : s + batch_size]).float() for s in range(0, rows.shape[0], batch_size)]
        )


def exact_knn(
    points: torch.Tensor, n_neighbors: int, chunk_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``n_neighbors`` nearest neighbours of every point, itself included.

    Squared distances ``||x||² - 2 x·y + ||y||²`` come a chunk of rows at a time from
    one matrix product, so memory stays at ``chunk_size × n`` floats; the result is
    deterministic (ties: torch's top-k order).

    Parameters
    ----------
    points : torch.Tensor of shape (n, d), float
    n_neighbors : int
        Neighbours per point, the point itself first (distance 0).
    chunk_size : int, default=256

    Returns
    -------
    indices : ndarray of shape (n, n_neighbors), int64
    distances : ndarray of shape (n, n_neighbors), float32
        Euclidean distances, ascending along each row.
    """
    points = points.float()
    n = points.shape[0]
    k = min(int(n_neighbors), n)
    squared = (points * points).sum(dim=1)
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, chunk_size):
            block = points[start : start + chunk_size]
            # ||y||² - 2 x·y: the row's own ||x||² does not change its ranking.
            partial = torch.addmm(squared.unsqueeze(0), block, points.T, beta=1.0, alpha=-2.0)
            values, found = torch.topk(partial, k, dim=1, largest=False, sorted=True)
            values = (values + squared[start : start + chunk_size, None]).clamp_(min=0).sqrt_()
            indices[start : start + block.shape[0]] = found.cpu().numpy()
            distances[start : start + block.shape[0]] = values.cpu().numpy()
    # A point's own distance is exactly 0 (rounding can leave a tiny positive value).
    distances[:, 0] = np.where(indices[:, 0] == np.arange(n), 0.0, distances[:, 0])
    return indices, distances


def umap_embedding(
    points: np.ndarray,
    knn_indices: np.ndarray,
    knn_distances: np.ndarray,
    *,
    n_components: int = 10,
    n_epochs: int | None = None,
    min_dist: float = 0.0,
    seed: int = 0,
    verbose: int = 0,
) -> np.ndarray:
    """UMAP's layout of the given k-nearest-neighbour graph (umap-learn).

    Seeded, so umap-learn runs its layout single-threaded and the result is
    reproducible; the neighbour search, its costly multi-threaded part, is replaced
    by the exact graph given here.

    Parameters
    ----------
    points : ndarray of shape (n, d)
        The points the graph was built on (umap-learn keeps them; the spectral
        initialisation reads only the graph).
    knn_indices, knn_distances : ndarray of shape (n, k)
        From :func:`exact_knn`, each point first in its own row.
    n_components : int, default=10
    n_epochs : int, optional
        Layout epochs; umap-learn's default (200 above 10,000 points, else 500).
    min_dist : float, default=0.0
        0 packs clusters tightly (what clustering wants).
    seed : int, default=0

    Returns
    -------
    ndarray of shape (n, n_components), float32
    """
    try:
        import umap
    except ImportError as error:  # pragma: no cover - the message is the point
        raise ImportError(
            'features="learned" needs umap-learn: pip install "neural-kmeans[learned]" '
            "(or pip install umap-learn)"
        ) from error
    import warnings

    n = knn_indices.shape[0]
    if n <= knn_indices.shape[1]:
        raise ValueError(f"UMAP needs more samples ({n}) than neighbours ({knn_indices.shape[1]})")
    reducer = umap.UMAP(
        n_neighbors=knn_indices.shape[1],
        n_components=n_components,
        min_dist=min_dist,
        n_epochs=n_epochs,
        random_state=seed,
        precomputed_knn=(knn_indices, knn_distances, None),
        verbose=verbose > 1,
    )
    with warnings.catch_warnings():
        # "n_jobs overridden to 1 by setting random_state": the reproducible choice.
        warnings.simplefilter("ignore", UserWarning)
        embedding = reducer.fit_transform(np.asarray(points, dtype=np.float32))
    return np.asarray(embedding, dtype=np.float32)


def random_affine(
    images: torch.Tensor,
    generator: torch.Generator,
    max_rotation: float = 10.0,
    max_shift: float = 0.07,
) -> torch.Tensor:
    """Each image rotated and shifted at random (bilinear, zero padding).

    Parameters
    ----------
    images : torch.Tensor of shape (b, c, h, w)
    generator : torch.Generator
        Draws the angles and shifts (on the CPU).
    max_rotation : float, default=10
        Largest rotation, degrees, either way.
    max_shift : float, default=0.07
        Largest shift, as a fraction of the image's side, either way (2 pixels of 28).

    Returns
    -------
    torch.Tensor of shape (b, c, h, w)
    """
    b = images.shape[0]
    draws = torch.rand(3, b, generator=generator).to(images.device, images.dtype) * 2 - 1
    angle = draws[0] * (max_rotation * math.pi / 180.0)
    # affine_grid's coordinates span [-1, 1]: a shift of f of the side is 2 f.
    shift_x, shift_y = draws[1] * (2 * max_shift), draws[2] * (2 * max_shift)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], dim=1), torch.stack([sin, cos, shift_y], dim=1)],
        dim=1,
    )
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return nn.functional.grid_sample(images, grid, align_corners=False)
