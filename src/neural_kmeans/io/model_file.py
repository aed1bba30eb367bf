"""Model files: a fitted model as plain state in a container that cannot run code.

A model file is the container of :mod:`neural_kmeans.io.container` (safetensors + a
digested JSON header; no pickle) holding the constructor parameters, the fitted
attributes (arrays as tensors, the rest as JSON), the network's description and its
weights. This module reads and writes that state; the estimator
(:meth:`NeuralKMeans.save <neural_kmeans.NeuralKMeans.save>`,
:meth:`NeuralKMeans.load <neural_kmeans.NeuralKMeans.load>`) makes it and rebuilds
itself from it, so nothing here knows the estimator.

A model whose network is a callable factory is saved with the factory's name only:
code is not data, so loading it needs the factory again and says so when it is
missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neural_kmeans.io.container import (
    history_from_json,
    history_to_json,
    params_to_json,
    plain,
    read_container,
    write_container,
)

MODEL_FORMAT = "neural-kmeans-model"
#: Bumped whenever a reader of the previous version could not read the new files.
MODEL_FORMAT_VERSION = 2


class ModelFileError(ValueError):
    """A model (or checkpoint) file is damaged, of another format version, or not ours."""


@dataclass
class SavedModel:
    """What a model file holds.

    Attributes
    ----------
    params : dict
        The constructor parameters in JSON form (with ``tensors`` for the array ones).
    fitted : dict
        The fitted attributes, by name (arrays as numpy arrays).
    network : dict
        How to rebuild the network: ``name`` (or ``{"factory": ...}``),
        ``input_shape``, ``n_clusters``, ``standardized``, ``dtype``.
    weights : dict of str to torch.Tensor
        The network's ``state_dict``.
    tensors : dict of str to torch.Tensor
        Every tensor of the file (the parameters' arrays among them).
    package_version : str or None
        The version of neural-kmeans that wrote the file (None: the header names none).
    """

    params: dict
    fitted: dict[str, Any]
    network: dict
    weights: dict[str, torch.Tensor]
    tensors: dict[str, torch.Tensor]
    package_version: str | None


def save_model(
    path: str | os.PathLike,
    *,
    params: dict[str, Any],
    fitted: dict[str, Any],
    network: dict,
    weights: dict[str, torch.Tensor],
) -> Path:
    """Write a fitted model's state to ``path`` (atomically).

    Parameters
    ----------
    path : str or os.PathLike
        The file (``.nkm`` by convention). Its folder must exist.
    params : dict
        ``get_params()``.
    fitted : dict
        The fitted attributes by name: arrays, numbers, strings, lists, dicts of
        those, and ``history_`` (a list of records).
    network : dict
        The network's description (see :class:`SavedModel`).
    weights : dict of str to torch.Tensor
        The network's ``state_dict``.
    """
    params_json, tensors = params_to_json(params)
    fitted_json: dict[str, Any] = {}
    for name, value in fitted.items():
        if name == "history_":
            fitted_json[name] = {"history": history_to_json(value, tensors)}
        elif isinstance(value, np.ndarray):
            tensors[f"fitted.{name}"] = torch.as_tensor(value)
            fitted_json[name] = {"tensor": f"fitted.{name}"}
        else:
            fitted_json[name] = {"value": plain(value)}
    tensors.update({f"network.{key}": value for key, value in weights.items()})
    header = {"params": params_json, "fitted": fitted_json, "network": network}
    return write_container(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, header, tensors)


def read_model(path: str | os.PathLike) -> SavedModel:
    """Read and verify a file written by :func:`save_model`.

    Raises
    ------
    ModelFileError
        A damaged or truncated file, one of another format version, a checkpoint or a
        file that is not a neural-kmeans model.
    FileNotFoundError
        No file at ``path``.
    """
    header, tensors = read_container(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, ModelFileError)
    try:
        fitted: dict[str, Any] = {}
        for name, entry in header["fitted"].items():
            if "history" in entry:
                fitted[name] = history_from_json(entry["history"], tensors)
            elif "tensor" in entry:
                fitted[name] = tensors[entry["tensor"]].numpy()
            else:
                fitted[name] = entry["value"]
        weights = {
            k.removeprefix("network."): v for k, v in tensors.items() if k.startswith("network.")
        }
        written_by = header.get("package_version")
        written_by = None if written_by is None else str(written_by)
        network = dict(header["network"])
        return SavedModel(header["params"], fitted, network, weights, tensors, written_by)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ModelFileError(
            f"{path} is not a valid neural-kmeans model file: its header is malformed "
            f"({type(error).__name__}: {error})"
        ) from None
