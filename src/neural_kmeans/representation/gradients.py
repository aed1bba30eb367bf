"""Step 1 of ``features="learned"`` on images, first stage: each image described by the
histograms of its gradients' orientations in small cells (HOG without blocks), the
space whose neighbour graph (:mod:`~neural_kmeans.representation.neighbours`) UMAP
then lays out (:mod:`~neural_kmeans.representation.layout`).

A generic descriptor of any image (not of one data set): it ignores the brightness of
the strokes and edges and keeps their direction and place, so two images of one kind
whose strokes are a little thicker, fainter or moved stay near each other. Measured on
10,000-image sets (docs/learned.md), the 20-nearest-neighbour graph of these
histograms has more neighbours of a sample's own class than that of the pixels, of
their first 50 principal components or of an autoencoder's codes, and costs seconds
where the autoencoder took minutes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

#: Orientation bins over 180 degrees (a gradient and its opposite share a bin).
ORIENTATION_BINS = 9

#: Smaller images are enlarged (bilinear, by the smallest whole factor that reaches
#: this side) before their gradients are taken: on an 8x8 grid, differences of
#: neighbouring pixels give coarse orientations (scikit-learn's 8x8 digits: ACC 0.88
#: without, 0.96 with, docs/learned.md).
MIN_SIDE = 16
#: Cells per side of an image, about (the cell's side is the image's over this).
CELLS_PER_SIDE = 7


def cell_geometry(height: int, width: int) -> tuple[int, int]:
    """The cells' side and stride in pixels for an image of ``height x width``: about
    :data:`CELLS_PER_SIDE` cells a side; at least 2 pixels a cell, overlapping by half
    where the image is too small for that (4-pixel cells for 28x28, 2-pixel cells a
    pixel apart for 8x8)."""
    stride = max(1, round(min(height, width) / CELLS_PER_SIDE))
    return max(2, stride), stride


def gradient_histograms(images: torch.Tensor, bins: int = ORIENTATION_BINS) -> torch.Tensor:
    """Each image's histograms of gradient orientations, (b, bins x cells) float32.

    Central differences give each pixel's gradient (the border pixels repeated); its
    magnitude is shared between the two nearest of ``bins`` unsigned orientations
    (linear interpolation), the channels' histograms are added, and each cell
    (:func:`cell_geometry`) averages its pixels'. Images smaller than
    :data:`MIN_SIDE` pixels a side are enlarged first.
    The histograms of an image are scaled to sum to 1 and square-rooted (the Hellinger
    kernel, which keeps one strong edge from outweighing the rest), so each row has unit
    length and Euclidean distances between rows compare the images' edges alone.

    Parameters
    ----------
    images : torch.Tensor of shape (b, c, h, w)
    bins : int, default=9

    Returns
    -------
    torch.Tensor of shape (b, bins * cells), float32, each row of unit length or zero
    """
    x = images.float()
    factor = math.ceil(MIN_SIDE / min(x.shape[-2:]))
    if factor > 1:
        x = nn.functional.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    channels = x.shape[1]
    dx = torch.tensor([-1.0, 0.0, 1.0], device=x.device).reshape(1, 1, 1, 3)
    # the border pixels repeated outward: no edge where an image meets its frame
    wide = nn.functional.pad(x, (1, 1, 0, 0), mode="replicate")
    tall = nn.functional.pad(x, (0, 0, 1, 1), mode="replicate")
    gx = nn.functional.conv2d(wide, dx.expand(channels, 1, 1, 3), groups=channels)
    gy = nn.functional.conv2d(
        tall, dx.reshape(1, 1, 3, 1).expand(channels, 1, 3, 1), groups=channels
    )
    magnitude = torch.sqrt(gx * gx + gy * gy)
    position = torch.remainder(torch.atan2(gy, gx), math.pi) * (bins / math.pi)
    lower = position.floor()
    share = position - lower
    lower = lower.long().remainder(bins)
    b, _, height, width = x.shape
    votes = torch.zeros(b, bins, height, width, device=x.device)
    for channel in range(channels):
        low, part = lower[:, channel : channel + 1], share[:, channel : channel + 1]
        strength = magnitude[:, channel : channel + 1]
        votes.scatter_add_(1, low, strength * (1 - part))
        votes.scatter_add_(1, (low + 1).remainder(bins), strength * part)
    cell, stride = cell_geometry(height, width)
    cells = nn.functional.avg_pool2d(votes, cell, stride, ceil_mode=True).flatten(1)
    total = cells.sum(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float32).tiny)
    return (cells / total).sqrt()


def histogram_features(batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """:func:`gradient_histograms` of the image batches, in order, (n, features)."""
    with torch.inference_mode():
        return torch.cat([gradient_histograms(images) for images in batches])
