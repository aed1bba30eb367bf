"""Input checks shared by every entry point: arrays in, a clear error or a clean view out."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_array

MNIST_FLAT_FEATURES = 28 * 28


def to_numpy_samples(X: Any, *, estimator_name: str = "NeuralKMeans") -> np.ndarray:
    """Validate samples and return them as a numpy array, without copying where possible.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n, d), (n, h, w) or (n, c, h, w)
        Rows or images. uint8 is kept as uint8 (scaled to [0, 1] later, per batch).

    Returns
    -------
    numpy.ndarray of the same shape, dtype uint8, float32 or float64.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach()
        if X.device.type != "cpu":
            X = X.cpu()
        X = X.numpy()
    if isinstance(X, np.ndarray) and X.dtype.kind not in "biufc" and X.dtype != object:
        raise TypeError(
            f"{estimator_name} needs numeric samples, got dtype {X.dtype}; "
            "convert the data to numbers (for example np.asarray(X, dtype=float))"
        )
    X = check_array(
        X,
        dtype=None if isinstance(X, np.ndarray) and X.dtype.kind in "uf" else "numeric",
        allow_nd=True,
        copy=False,
        ensure_min_samples=1,
        estimator=estimator_name,
    )
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            f"{estimator_name} takes rows (n, d) or images (n, h, w) / (n, c, h, w); "
            f"got an array with {X.ndim} dimensions of shape {X.shape}"
        )
    if X.dtype == np.uint8 or X.dtype in (np.float32, np.float64):
        return X
    if X.dtype.kind == "f":
        return X.astype(np.float32)
    return X.astype(np.float64)


def resolve_image_shape(
    sample_shape: tuple[int, ...], image_shape: tuple[int, ...] | None
) -> tuple[int, ...] | None:
    """The (c, h, w) shape of one sample, or None for plain rows.

    ``sample_shape`` is ``X.shape[1:]``. Flat rows take ``image_shape`` when given
    ((h, w) or (c, h, w)); 784 features are read as 28x28 greyscale.
    """
    if len(sample_shape) == 3:
        found = tuple(sample_shape)
    elif len(sample_shape) == 2:
        found = (1, *sample_shape)
    elif image_shape is not None:
        found = tuple(int(s) for s in image_shape)
        if len(found) == 2:
            found = (1, *found)
        if len(found) != 3 or math.prod(found) != sample_shape[0]:
            raise ValueError(
                f"image_shape={tuple(image_shape)} does not fit rows of {sample_shape[0]} "
                "features; give (h, w) or (c, h, w) whose product is the number of features"
            )
        return found
    elif sample_shape[0] == MNIST_FLAT_FEATURES:
        return (1, 28, 28)
    else:
        return None
    if image_shape is not None:
        wanted = tuple(int(s) for s in image_shape)
        if (1, *wanted) != found and wanted != found:
            raise ValueError(
                f"image_shape={tuple(image_shape)} contradicts the images' shape {sample_shape}"
            )
    return found
