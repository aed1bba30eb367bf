"""A fitted ``NeuralKMeans`` to and from its model file: the state the estimator gives
:mod:`neural_kmeans.io.model_file`, and the estimator rebuilt from it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from neural_kmeans.core.networks import (
    LEARNED_NETWORK,
    NETWORK_NAMES,
    make_network,
    needs_standardizing,
)
from neural_kmeans.core.validation import InvalidParameterError, check_device, resolve_device
from neural_kmeans.io.container import network_to_json, params_from_json
from neural_kmeans.io.model_file import ModelFileError, SavedModel, read_model, save_model


def network_spec(model: Any) -> dict[str, Any]:
    """How to rebuild a fitted model's network (for model files and checkpoints)."""
    return {
        "name": network_to_json(model._network_name),
        "input_shape": list(model._input_shape()),
        "n_clusters": int(model.n_clusters),
        "standardized": needs_standardizing(model._network_name, model._input_shape()),
        "dtype": str(model._dtype).removeprefix("torch."),
    }


def save(model: Any, path: str | os.PathLike, attributes: Sequence[str]) -> None:
    """Write the fitted ``model``'s parameters, ``attributes`` and network to ``path``."""
    fitted = {name: getattr(model, name) for name in attributes if hasattr(model, name)}
    fitted["image_shape_"] = None if model.image_shape_ is None else list(model.image_shape_)
    save_model(
        path,
        params=model.get_params(deep=False),
        fitted=fitted,
        network={**network_spec(model), "device": str(model.device_)},
        weights=model.network_.state_dict(),
    )


def load(cls: type, path: str | os.PathLike, factory: Callable | None, device: Any) -> Any:
    """Rebuild a fitted estimator of class ``cls`` from the model file at ``path``."""
    saved = read_model(path)
    spec = saved.network
    name = spec["name"]
    if isinstance(name, dict):
        if not callable(factory):
            raise ModelFileError(
                f"{path} was fitted with the custom network factory {name['factory']}, "
                "which a model file cannot hold (it is code); pass it again: "
                "NeuralKMeans.load(path, network=factory)"
            )
        name = factory
    elif name not in (*NETWORK_NAMES, LEARNED_NETWORK):
        raise ModelFileError(f"{path} names an unknown network {name!r}")
    params = params_from_json(saved.params, saved.tensors, factory)
    if device is not None:
        params["device"] = device
    model = cls(**params)
    try:
        check_device(model.device)
    except InvalidParameterError as problem:
        raise ValueError(
            f"{problem}; the model in {path} was saved with device="
            f"{saved.params['device']!r}: load it elsewhere with "
            "NeuralKMeans.load(path, device='cpu')"
        ) from None
    for attribute, value in saved.fitted.items():
        setattr(model, attribute, value)
    shape = model.image_shape_
    model.image_shape_ = None if shape is None else tuple(int(s) for s in shape)
    model._network_name = name
    model._dtype = getattr(torch, spec["dtype"])
    model.device_ = resolve_device(model.device)
    if tuple(spec["input_shape"]) != model._input_shape():
        raise ModelFileError(
            f"{path} is inconsistent: input shape {tuple(spec['input_shape'])} does not "
            f"follow from its image shape {model.image_shape_} and network {name!r}"
        )
    _check_weight_shapes(path, name, model, spec["standardized"], saved)
    standardize = (torch.zeros(model.n_features_in_), 1.0) if spec["standardized"] else None
    with torch.random.fork_rng(devices=[]):
        network = make_network(name, model._input_shape(), model.n_clusters, standardize)
    network = network.to(device=model.device_, dtype=model._dtype)
    try:
        network.load_state_dict(saved.weights, strict=True)
    except RuntimeError as problem:
        raise ModelFileError(
            f"the network saved in {path} does not fit the network rebuilt from its "
            f"header{' (with the factory given)' if callable(name) else ''}: {problem}"
        ) from None
    model.network_ = network.eval()
    return model


def _check_weight_shapes(
    path: Any, name: Any, model: Any, standardized: bool, saved: SavedModel
) -> None:
    """The network the header describes, built without memory (on the ``meta`` device),
    must have exactly the saved weights' shapes: a header that asks for more than the
    file holds (a forged ``n_clusters`` or input shape) is refused before allocation."""
    try:
        with torch.device("meta"), torch.random.fork_rng(devices=[]):
            mean = torch.zeros(model.n_features_in_)
            skeleton = make_network(
                name, model._input_shape(), model.n_clusters, (mean, 1.0) if standardized else None
            )
    except (ValueError, TypeError, RuntimeError) as problem:
        raise ModelFileError(
            f"{path} describes a network that cannot be built: {problem}"
        ) from None
    expected = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in saved.weights.items()}
    if expected != found:
        from neural_kmeans import __version__

        older = saved.package_version not in (None, __version__)
        raise ModelFileError(
            f"{path} is inconsistent: its header (K={model.n_clusters}, input shape "
            f"{model._input_shape()}) does not describe the weights it holds; "
            + (
                f"it was written by neural-kmeans {saved.package_version}, whose network "
                f"for this input differs from this version's ({__version__}): fit it again, "
                f"or load it with neural-kmeans {saved.package_version}"
                if older
                else "the file was changed or damaged: use an intact copy"
            )
        )
