"""The small random rotations and shifts the self-labelled network sees images through."""

from __future__ import annotations

import math

import torch
from torch import nn


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
