"""Step 2's model: the classifier networks that stand in for K-means' distance step.

Every network maps a batch of samples in its input layout to ``K`` logits:
``(batch, *input_shape) -> (batch, K)``. ``input_shape`` is ``(c, h, w)`` for images
and ``(d,)`` for rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from neural_kmeans.core.validation import CNN_MIN_SIZE, NETWORK_NAMES

#: Built-in networks that read flat rows even when the samples are images.
ROW_NETWORKS = ("mlp", "linear", "nearest-centroid")
#: The network of ``features="learned"`` (:class:`LearnedNetwork`), not one of ``network``'s.
LEARNED_NETWORK = "learned"
MLP_HIDDEN_UNITS = 128

NetworkFactory = Callable[[tuple[int, ...], int], nn.Module]


def cnn(input_shape: tuple[int, ...], n_clusters: int) -> nn.Sequential:
    """The reference notebook's CNN for ``(c, h, w)`` images.

    Conv2d(c→32, 3x3) + ReLU, MaxPool 2, Conv2d(32→64, 3x3) + ReLU, MaxPool 2,
    Flatten, Dropout 0.5, Linear → K. A pooling layer whose input is a single pixel
    wide keeps it (ceil mode), so images as small as 8x8 still fit; for 28x28 the
    layers are exactly the notebook's (1,600 features before the dense layer).
    """
    if len(input_shape) != 3:
        raise ValueError(f"network='cnn' needs images of shape (c, h, w), got {input_shape}")
    channels, height, width = input_shape
    if min(height, width) < CNN_MIN_SIZE:
        raise ValueError(
            f"network='cnn' needs images of at least 8x8 pixels, got {height}x{width}; "
            "use network='mlp' for smaller inputs"
        )

    features = nn.Sequential(
        nn.Conv2d(channels, 32, kernel_size=3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=3),
        nn.ReLU(),
    )
    with torch.no_grad():
        map_size = features(torch.zeros(1, channels, height, width)).shape[-2:]
    features.append(nn.MaxPool2d(2, ceil_mode=min(map_size) < 2))
    with torch.no_grad():
        n_features = features(torch.zeros(1, channels, height, width)).numel()
    return nn.Sequential(
        *features,
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(n_features, n_clusters),
    )


def mlp(input_shape: tuple[int, ...], n_clusters: int) -> nn.Sequential:
    """One hidden layer of 128 ReLU units: ``d → 128 → K``."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), MLP_HIDDEN_UNITS),
        nn.ReLU(),
        nn.Linear(MLP_HIDDEN_UNITS, n_clusters),
    )


def linear(input_shape: tuple[int, ...], n_clusters: int) -> nn.Sequential:
    """A single softmax layer: ``d → K``."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_clusters))


class NearestCentroidNetwork(nn.Module):
    """The exact bridge to K-means: a linear layer that picks the nearest centroid.

    With weights ``2 c_k`` and biases ``-||c_k||²`` the logit of cluster k is
    ``||x||² - ||x - c_k||²``, so the arg-max is the nearest centroid and the loop
    becomes Lloyd's algorithm. It is set from the centroids, never trained. Samples and
    centroids are first moved by ``offset`` (the data's mean, as scikit-learn's
    ``KMeans`` centres its data), which keeps the products small and their rounding
    the same as scikit-learn's.
    """

    def __init__(self, input_shape: tuple[int, ...], n_clusters: int) -> None:
        super().__init__()
        n_features = math.prod(input_shape)
        self.linear = nn.Linear(n_features, n_clusters)
        self.linear.requires_grad_(False)
        self.register_buffer("offset", torch.zeros(n_features))

    def set_centroids(self, centroids: torch.Tensor) -> None:
        """Load ``centroids`` of shape (K, d) into the layer's weights and biases."""
        flat = centroids.reshape(centroids.shape[0], -1).to(self.linear.weight) - self.offset
        self.linear.weight.copy_(2.0 * flat)
        self.linear.bias.copy_(-(flat * flat).sum(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.reshape(x.shape[0], -1) - self.offset)


class Standardize(nn.Module):
    """Fixed input scaling ``(x - mean) / scale`` with a per-feature mean of shape (d,)
    and one scalar scale, so Euclidean geometry (what K-means sees) is kept."""

    def __init__(self, mean: torch.Tensor, scale: float) -> None:
        super().__init__()
        self.register_buffer("mean", mean.reshape(-1).clone())
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.reshape(x.shape[0], -1) - self.mean) / self.scale


#: :class:`LearnedNetwork` sees images of twice this side and more averaged down to
#: between this side and twice it.
LEARNED_MAX_SIDE = 32


class LearnedNetwork(nn.Module):
    """The self-labelled classifier; it reads samples in any layout of ``input_shape``.

    ``(c, h, w)`` images: two 5x5 convolutions (16 and 32 channels) with batch
    normalisation, ReLU and 2x2 max pooling, dropout 0.3, a linear layer to K. Images
    of twice :data:`LEARNED_MAX_SIDE` (64) pixels a side and more are first averaged
    in f x f blocks, f the whole number of times that side fits in their shorter one
    (96x96: 3x3 blocks, 32x32 seen), so a step costs at most a few 28x28 steps.
    ``(d,)`` rows: ``d → 512`` with batch normalisation and ReLU, dropout 0.3,
    ``512 → K`` (behind a :class:`Standardize` layer, see :func:`make_network`).
    Inputs of shape (b, d) or (b, *input_shape) are both accepted (reshaped to
    ``input_shape``).

    Parameters
    ----------
    input_shape : tuple of int
        ``(c, h, w)`` or ``(d,)``.
    n_clusters : int
    """

    def __init__(self, input_shape: Sequence[int], n_clusters: int) -> None:
        super().__init__()
        self.input_shape: list[int] = [int(s) for s in input_shape]
        if len(self.input_shape) == 3:
            channels, height, width = self.input_shape
            factor = max(1, min(height, width) // LEARNED_MAX_SIDE)
            shrink = [nn.AvgPool2d(factor, ceil_mode=True)] if factor > 1 else []
            features = nn.Sequential(
                *shrink,
                *_conv_block(channels, 16),
                nn.MaxPool2d(2, ceil_mode=True),
                *_conv_block(16, 32),
                nn.MaxPool2d(2, ceil_mode=True),
                nn.Flatten(),
            )
            with torch.no_grad():  # in eval mode: batch norm takes one 1x1 image there
                n_features = features.eval()(torch.zeros(1, channels, height, width)).shape[1]
            features.train()
            self.body = nn.Sequential(*features, nn.Dropout(0.3), nn.Linear(n_features, n_clusters))
        else:
            n_features = math.prod(self.input_shape)
            self.body = nn.Sequential(
                nn.Linear(n_features, 512),
                nn.BatchNorm1d(512),
                nn.ReLU(),
                nn.Dropout(0.3),
                nn.Linear(512, n_clusters),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape([x.shape[0]] + self.input_shape))  # noqa: RUF005 (TorchScript)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the last linear layer (b, h): what the network tells the
        clusters apart by (in eval mode, no dropout)."""
        return self.body[:-1](x.reshape([x.shape[0], *self.input_shape]))


def _conv_block(channels_in: int, channels_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(channels_in, channels_out, 5, padding=2, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(),
    ]


NETWORK_FACTORIES: dict[str, NetworkFactory] = {
    "cnn": cnn,
    "mlp": mlp,
    "linear": linear,
    "nearest-centroid": NearestCentroidNetwork,
    LEARNED_NETWORK: LearnedNetwork,
}


def resolve_network_name(
    network: str | NetworkFactory, image_shape: tuple[int, ...] | None
) -> str | NetworkFactory:
    """Turn ``"auto"`` into ``"cnn"`` for images of at least 8x8 pixels and ``"mlp"``
    for rows and smaller images."""
    if network == "auto":
        big = image_shape is not None and min(image_shape[-2:]) >= CNN_MIN_SIZE
        return "cnn" if big else "mlp"
    return network


def _check_factory_module(module: nn.Module, input_shape: tuple[int, ...], k: int) -> None:
    """A factory's module must map a batch of ``input_shape`` samples to K logits each:
    probed on two zero samples (no gradients, eval mode, which draws no random numbers
    and changes no state), before the fit, so a wrong width is named, not met deep in
    the loss."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            parameter = next(module.parameters(), None)
            dtype = torch.float32 if parameter is None else parameter.dtype
            outputs = module(torch.zeros((2, *input_shape), dtype=dtype))
    except Exception as problem:
        raise ValueError(
            f"the network factory's module cannot take samples of shape {input_shape} "
            f"(a batch of shape {(2, *input_shape)}): {type(problem).__name__}: {problem}"
        ) from None
    finally:
        module.train(was_training)
    shape = tuple(getattr(outputs, "shape", ()))
    if shape != (2, k):
        raise ValueError(
            f"the network factory's module must give K={k} outputs (logits) per sample, "
            f"a batch of shape (n, {k}); for a batch of 2 samples of shape {input_shape} it "
            f"gave {shape}: make its last layer output n_clusters values"
        )


def needs_standardizing(network: str | NetworkFactory, input_shape: tuple[int, ...]) -> bool:
    """Whether ``network`` sees its inputs through a fixed :class:`Standardize` layer: the
    MLP and linear networks, and the learned network on rows, learn far better from
    centred features of unit scale."""
    return network in ("mlp", "linear") or (network == LEARNED_NETWORK and len(input_shape) == 1)


def make_network(
    network: str | NetworkFactory,
    input_shape: tuple[int, ...],
    n_clusters: int,
    standardize: tuple[torch.Tensor, float] | None = None,
) -> nn.Module:
    """Build the network named by ``network`` (or call the factory) for ``input_shape``,
    behind ``Standardize(mean, scale)`` when ``standardize`` is given (the structure
    that fitting trains and model files rebuild)."""
    input_shape = tuple(input_shape)
    if callable(network):
        module = network(input_shape, n_clusters)
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"the network factory returned {type(module).__name__}, expected a torch.nn.Module"
            )
        _check_factory_module(module, input_shape, n_clusters)
    elif network in NETWORK_FACTORIES:
        module = NETWORK_FACTORIES[network](input_shape, n_clusters)
    else:
        raise ValueError(
            f"unknown network {network!r}; choose one of {', '.join(NETWORK_NAMES)} "
            "or pass a callable (input_shape, n_clusters) -> torch.nn.Module"
        )
    if standardize is None:
        return module
    return nn.Sequential(Standardize(*standardize), module)
