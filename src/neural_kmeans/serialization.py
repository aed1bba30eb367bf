"""Saving and loading fitted models in a file that cannot run code when read.

A model file is a `safetensors <https://github.com/huggingface/safetensors>`_ file:
the tensors (the network's ``state_dict``, ``cluster_centers_``, ``labels_``,
``initial_centers_``, ...) as raw numbers, and in its metadata a JSON header (the
format and its version, the package version, the constructor parameters, the
resolved network, the input shape, the fitted scalars and the history) and a SHA-256
digest of the header and of every tensor's name, dtype, shape and bytes. Reading it
parses JSON and copies numbers; nothing is unpickled, so a file from elsewhere cannot
execute code. A changed byte anywhere, a truncated file or a file of another format
version is a :class:`ModelFileError` that says which.

The same container, with another ``format``, holds the checkpoints of
:mod:`neural_kmeans.checkpoint`.

A model whose network is a callable factory is saved with the factory's name only:
code is not data, so :func:`load_model` needs the factory again
(``NeuralKMeans.load(path, network=factory)``) and says so when it is missing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import safetensors.torch
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from neural_kmeans.networks import LEARNED_NETWORK, NETWORK_NAMES, Standardize, build_network
from neural_kmeans.validation import InvalidParameterError, check_device

if TYPE_CHECKING:
    from neural_kmeans.estimator import NeuralKMeans

MODEL_FORMAT = "neural-kmeans-model"
#: Bumped whenever a reader of the previous version could not read the new files.
MODEL_FORMAT_VERSION = 1
#: The metadata keys of the safetensors file.
HEADER_KEY = "neural_kmeans"
DIGEST_KEY = "digest"
#: A safetensors header larger than this is not one of ours (guards the JSON parser).
MAX_HEADER_BYTES = 64 << 20

_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
# Parameters kept out of files: callables and objects are code or state, not data.
_PARAM_SKIPPED = "not saved"


class ModelFileError(ValueError):
    """A model (or checkpoint) file is damaged, of another format version, or not ours."""


# ------------------------------------------------------------------------ public API
def save_model(model: NeuralKMeans, path: str | os.PathLike) -> Path:
    """Write a fitted ``model`` to ``path`` (atomically: a temporary file, then a rename).

    Parameters
    ----------
    model : NeuralKMeans
        A fitted estimator.
    path : str or os.PathLike
        The file to write (any extension; ``.nkm`` by convention). Its folder must exist.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    check_is_fitted(model, "network_")
    network = model.network_
    name = model._network_name
    standardized = (
        isinstance(network, nn.Sequential)
        and len(network) > 1
        and isinstance(network[0], Standardize)
    )
    params, tensors = params_to_json(model.get_params(deep=False))
    for key, value in network.state_dict().items():
        tensors[f"network.{key}"] = value
    tensors["cluster_centers_"] = torch.as_tensor(np.asarray(model.cluster_centers_))
    tensors["labels_"] = torch.as_tensor(np.asarray(model.labels_, dtype=np.int64))
    tensors["initial_centers_"] = torch.as_tensor(np.asarray(model.initial_centers_))
    history = store_history(model.history_, tensors)
    header = {
        "params": params,
        "network": network_to_json(name),
        "standardized": standardized,
        "channels_last": _is_channels_last(network),
        "input_shape": list(model._input_shape()),
        "image_shape_": None if model.image_shape_ is None else list(model.image_shape_),
        "n_features_in_": int(model.n_features_in_),
        "n_clusters": int(model.n_clusters),
        "dtype": str(model._dtype).removeprefix("torch."),
        "device_": str(model.device_),
        "inertia_": float(model.inertia_),
        "n_iter_": int(model.n_iter_),
        "converged_": bool(model.converged_),
        "history_": history,
    }
    return write_container(path, MODEL_FORMAT, MODEL_FORMAT_VERSION, header, tensors)


def load_model(
    path: str | os.PathLike,
    *,
    network: Any = None,
    device: Any = None,
    cls: type | None = None,
) -> NeuralKMeans:
    """Read a model written by :func:`save_model`; its predictions equal the saved model's.

    Parameters
    ----------
    path : str or os.PathLike
    network : callable, optional
        The network factory, needed (only) for a model fitted with a callable network.
    device : str or torch.device, optional
        Where to put the network; by default the saved ``device`` parameter (``"auto"``
        unless it was set).
    cls : type, optional
        The estimator class (``NeuralKMeans`` or a subclass).

    Returns
    -------
    NeuralKMeans
        Fitted, with the saved parameters (callbacks and non-integer random states,
        which are code or state rather than data, come back as None).

    Raises
    ------
    ModelFileError
        A damaged or truncated file, a file of another format version, a checkpoint
        or a file that is not a neural-kmeans model, or a missing network factory.
    FileNotFoundError
        No file at ``path``.
    """
    data = Path(path).read_bytes()
    return load_model_bytes(data, network=network, device=device, cls=cls, name=str(path))


def load_model_bytes(
    data: bytes,
    *,
    network: Any = None,
    device: Any = None,
    cls: type | None = None,
    name: str = "the model data",
) -> NeuralKMeans:
    """:func:`load_model` from the file's bytes (already read, or from elsewhere).

    ``name`` stands for the source in error messages.
    """
    if cls is None:
        from neural_kmeans.estimator import NeuralKMeans

        cls = NeuralKMeans
    header, tensors = parse_container(data, name, MODEL_FORMAT, MODEL_FORMAT_VERSION)
    try:
        return _model_from(header, tensors, name, network, device, cls)
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        raise ModelFileError(
            f"{name} is not a valid neural-kmeans model file: its header is malformed "
            f"({type(error).__name__}: {error})"
        ) from None


# ------------------------------------------------------------- the container format
def write_container(
    path: str | os.PathLike,
    kind: str,
    version: int,
    header: dict,
    tensors: dict[str, torch.Tensor],
) -> Path:
    """Write ``tensors`` and a JSON ``header`` as a digested safetensors file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
    kind : str
        The ``format`` recorded in the header (what the file is).
    version : int
        The format's version.
    header : dict
        JSON-able content (``format`` and ``format_version`` are added).
    tensors : dict of str to torch.Tensor
        Copied to contiguous CPU tensors before writing.

    Returns
    -------
    pathlib.Path
    """
    from neural_kmeans import __version__

    cpu = {
        name: t.detach().to("cpu").clone(memory_format=torch.contiguous_format)
        for name, t in tensors.items()
    }
    full = {
        "format": kind,
        "format_version": version,
        "package_version": __version__,
        "torch_version": torch.__version__,
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **header,
    }
    text = json.dumps(full, sort_keys=True, allow_nan=False)
    metadata = {HEADER_KEY: text, DIGEST_KEY: "sha256:" + content_digest(text, cpu)}
    payload = safetensors.torch.save(cpu, metadata=metadata)
    path = Path(path)
    atomic_write_bytes(path, payload)
    return path


def read_container(
    path: str | os.PathLike,
    kind: str,
    version: int,
    error: type[Exception] = ModelFileError,
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read and verify a file written by :func:`write_container`.

    The checks, in order: the safetensors framing, our metadata, the tensors, the
    ``format_version``, the digest and the ``format``. Tensors are read by safetensors (raw numbers,
    no code); the header is parsed as JSON.

    Parameters
    ----------
    path : str or os.PathLike
    kind : str
        The expected ``format``.
    version : int
        The format version this reader understands.
    error : exception class, default=ModelFileError
        Raised, with a message naming the file and the problem, on any failed check.

    Returns
    -------
    header : dict
    tensors : dict of str to torch.Tensor
    """
    return parse_container(Path(path).read_bytes(), str(path), kind, version, error)


def parse_container(
    data: bytes,
    path: str,
    kind: str,
    version: int,
    error: type[Exception] = ModelFileError,
) -> tuple[dict, dict[str, torch.Tensor]]:
    """:func:`read_container` on the bytes of a file; ``path`` names it in messages."""
    what = "a neural-kmeans checkpoint" if "checkpoint" in kind else "a neural-kmeans model"
    if len(data) < 8:
        raise error(f"{path} is not {what} file: it is only {len(data)} bytes long")
    size = int.from_bytes(data[:8], "little")
    if size > min(len(data) - 8, MAX_HEADER_BYTES):
        raise error(
            f"{path} is not {what} file, or it is truncated or damaged: its header "
            f"length field says {size} bytes but the file holds {len(data) - 8} more"
        )
    raw = data[8 : 8 + size]
    body = raw.rstrip(b" ")  # safetensors pads its header with spaces, and only spaces
    try:
        if not body.endswith(b"}"):
            raise ValueError("the header does not end where its length field says")
        framing = json.loads(body.decode("utf-8"))
        metadata = framing.get("__metadata__") or {}
        text, digest = metadata[HEADER_KEY], metadata[DIGEST_KEY]
        header = json.loads(text)
        found_kind, found_version = header["format"], header["format_version"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise error(
            f"{path} is not {what} file, or it is damaged: its header cannot be read"
        ) from None
    try:
        tensors = safetensors.torch.load(data)
    except Exception as failure:  # safetensors raises its own SafetensorError
        raise error(
            f"{path} is damaged: its tensors cannot be read ({failure}); the file was "
            "changed or cut short after it was written"
        ) from None
    digest_ok = digest == "sha256:" + content_digest(text, tensors)
    if found_version != version:
        written_by = header.get("package_version", "an unknown version")
        raise error(
            f"{path} is in format version {found_version!r} (written by neural-kmeans "
            f"{written_by}); this neural-kmeans reads format version {version} only: read "
            "it with the neural-kmeans that wrote it"
            + ("" if digest_ok else " (its digest does not match either: it may be damaged)")
        )
    if not digest_ok:
        raise error(
            f"{path} is damaged: its SHA-256 digest does not match its content (the file "
            "was changed after it was written); use an intact copy"
        )
    if found_kind != kind:
        raise error(f"{path} is a {found_kind!r} file, not {what} file")
    return header, tensors


def content_digest(header_text: str, tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of the header text and each tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(b"neural-kmeans container\0")
    digest.update(header_text.encode("utf-8") + b"\0")
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that a reader sees the old file or the new, whole.

    A temporary file in the same folder is written and flushed to disk (fsync), then
    renamed over ``path`` (``os.replace``, atomic on POSIX and Windows); the folder is
    then synced so the rename itself survives a crash.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; the rename is durable enough there
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# --------------------------------------------------------------- JSON of the estimator
def params_to_json(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The constructor parameters as JSON, and the array ones as tensors.

    A callable network becomes ``{"factory": "module.qualname"}``; an ``init`` array
    the tensor ``param.init``; callbacks and numpy random generators, which are code
    or state, ``{"not saved": "<type>"}``.
    """
    out: dict[str, Any] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, value in params.items():
        if name == "network" and callable(value):
            out[name] = network_to_json(value)
        elif name == "init" and not isinstance(value, str):
            tensors["param.init"] = torch.as_tensor(np.asarray(value, dtype=np.float64))
            out[name] = {"array": "param.init"}
        elif name == "device":
            out[name] = str(value)
        elif name == "checkpoint_dir":
            out[name] = None if value is None else os.fspath(value)
        elif name == "image_shape":
            out[name] = None if value is None else [int(s) for s in value]
        elif name == "learned_params":
            out[name] = None if value is None else {k: _plain(v) for k, v in value.items()}
        elif isinstance(value, np.generic):
            out[name] = value.item()
        elif value is None or isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = {_PARAM_SKIPPED: type(value).__name__}
    return out, tensors


def params_from_json(
    params: dict[str, Any], tensors: dict[str, torch.Tensor], network: Any = None
) -> dict[str, Any]:
    """Invert :func:`params_to_json`; ``network`` replaces a saved factory's name."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name == "network" and isinstance(value, dict):
            out[name] = network
        elif name == "init" and isinstance(value, dict):
            out[name] = tensors[value["array"]].numpy()
        elif name == "image_shape" and value is not None:
            out[name] = tuple(value)
        elif name == "learned_params":
            out[name] = value
        elif isinstance(value, dict):  # not saved: callbacks, generators
            out[name] = None
        else:
            out[name] = value
    return out


def network_to_json(network: Any) -> Any:
    """A network's name, or ``{"factory": "module.qualname"}`` for a callable."""
    if isinstance(network, str):
        return network
    module = getattr(network, "__module__", None) or "?"
    qualname = getattr(network, "__qualname__", None) or type(network).__qualname__
    return {"factory": f"{module}.{qualname}"}


def history_to_json(history: list[dict]) -> tuple[list[dict], torch.Tensor | None]:
    """``history_`` as JSON records, and its recorded centroids as one (n_iter, K, d) tensor."""
    records, centroids = [], []
    for record in history:
        plain = {k: _plain(v) for k, v in record.items() if k != "centroids"}
        records.append(plain)
        if "centroids" in record:
            centroids.append(torch.as_tensor(np.asarray(record["centroids"])))
    if centroids and len(centroids) == len(history):
        return records, torch.stack(centroids)
    return records, None


def store_history(history: list[dict], tensors: dict[str, torch.Tensor]) -> list[dict]:
    """``history_`` as JSON records (:func:`history_to_json`); its recorded centroids,
    when every record has them, go into ``tensors["history.centroids"]``."""
    records, centroids = history_to_json(history)
    if centroids is not None:
        tensors["history.centroids"] = centroids
    return records


def history_from_json(records: list[dict], centroids: torch.Tensor | None) -> list[dict]:
    """Invert :func:`history_to_json`."""
    history = [dict(record) for record in records]
    if centroids is not None:
        for record, values in zip(history, centroids, strict=True):
            record["centroids"] = values.numpy()
    return history


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


# ------------------------------------------------------------------ rebuilding a model
def rebuild_network(
    name: Any,
    input_shape: tuple[int, ...],
    n_clusters: int,
    n_features: int,
    *,
    standardized: bool,
    dtype: torch.dtype,
    device: torch.device,
    channels_last: bool,
) -> nn.Module:
    """An untrained network with the structure ``NeuralKMeans`` fitted, to load weights into.

    Built under a forked torch random state: the global generator is not advanced.
    """
    with torch.random.fork_rng(devices=[]):
        network = build_network(name, input_shape, n_clusters)
        if standardized:
            network = nn.Sequential(Standardize(torch.zeros(n_features), 1.0), network)
    network = network.to(device=device, dtype=dtype)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    return network


def _model_from(
    header: dict,
    tensors: dict[str, torch.Tensor],
    path: Any,
    network: Any,
    device: Any,
    cls: type,
) -> NeuralKMeans:
    saved_network = header["network"]
    if isinstance(saved_network, dict):
        if not callable(network):
            raise ModelFileError(
                f"{path} was fitted with the custom network factory "
                f"{saved_network['factory']}, which a model file cannot hold (it is code); "
                "pass it again: NeuralKMeans.load(path, network=factory)"
            )
        name = network
    else:
        if saved_network not in (*NETWORK_NAMES, LEARNED_NETWORK):
            raise ModelFileError(f"{path} names an unknown network {saved_network!r}")
        name = saved_network
    params = params_from_json(header["params"], tensors, network)
    if device is not None:
        params["device"] = device
    model = cls(**params)
    try:
        check_device(model.device)
    except InvalidParameterError as problem:
        raise ValueError(
            f"{problem}; the model in {path} was saved with device={header['params']['device']!r}: "
            "load it elsewhere with NeuralKMeans.load(path, device='cpu')"
        ) from None
    dtype = _DTYPES[header["dtype"]]
    model.device_ = model._resolve_device()
    model._dtype = dtype
    model._network_name = name
    model.n_features_in_ = int(header["n_features_in_"])
    image_shape = header["image_shape_"]
    model.image_shape_ = None if image_shape is None else tuple(int(s) for s in image_shape)
    input_shape = tuple(int(s) for s in header["input_shape"])
    if input_shape != model._input_shape():
        raise ModelFileError(
            f"{path} is inconsistent: input shape {input_shape} does not follow from "
            f"its image shape {model.image_shape_} and network {saved_network!r}"
        )
    net = rebuild_network(
        name,
        input_shape,
        int(header["n_clusters"]),
        model.n_features_in_,
        standardized=bool(header["standardized"]),
        dtype=dtype,
        device=model.device_,
        channels_last=bool(header["channels_last"]),
    )
    state = {k.removeprefix("network."): v for k, v in tensors.items() if k.startswith("network.")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as problem:
        raise ModelFileError(
            f"the network saved in {path} does not fit the network rebuilt from its header"
            f"{' (with the factory given)' if callable(name) else ''}: {problem}"
        ) from None
    model.network_ = net.eval()
    model.current_network_ = model.network_
    model.cluster_centers_ = tensors["cluster_centers_"].numpy()
    model.labels_ = tensors["labels_"].numpy()
    model.initial_centers_ = tensors["initial_centers_"].numpy()
    model.inertia_ = float(header["inertia_"])
    model.n_iter_ = int(header["n_iter_"])
    model.converged_ = bool(header["converged_"])
    model.history_ = history_from_json(header["history_"], tensors.get("history.centroids"))
    return model


def _is_channels_last(network: nn.Module) -> bool:
    """Whether the network's 4-d weights are stored channels-last (its CPU CNN layout)."""
    for parameter in network.parameters():
        if parameter.dim() == 4 and not parameter.is_contiguous():
            return parameter.is_contiguous(memory_format=torch.channels_last)
    return False
