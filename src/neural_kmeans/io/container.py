"""The file container of model files and checkpoints: safetensors with a digested JSON header.

A container is a `safetensors <https://github.com/huggingface/safetensors>`_ file: the
tensors as raw numbers, and in its metadata a JSON header (what the file is, its
format version, the package and torch versions, and the caller's content) with a
SHA-256 digest of the header and of every tensor's name, dtype, shape and bytes.
Reading one parses JSON and copies numbers (safetensors' own reader); nothing is
unpickled, so a file from elsewhere cannot run code. The digest detects damage (a
changed byte, a cut file); it is not a signature: whoever can write the file can
write a matching digest. For tamper evidence, set ``NEURAL_KMEANS_MODEL_KEY`` to a
secret: files are then written with an HMAC-SHA-256 of the same content under that
key, and only files carrying a matching one are read. Files are written atomically
(a temporary file, fsync, a rename).

Also here: the JSON forms of the estimator's parameters and history, which both
kinds of file hold.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch

#: The metadata keys of the safetensors file.
HEADER_KEY = "neural_kmeans"
DIGEST_KEY = "digest"
#: The environment variable of the key for keyed digests (tamper evidence).
KEY_VARIABLE = "NEURAL_KMEANS_MODEL_KEY"
KEYED_PREFIX = "hmac-sha256:"
# Parameters kept out of files: callables and objects are code or state, not data.
_PARAM_SKIPPED = "not saved"


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
    metadata = {HEADER_KEY: text, DIGEST_KEY: file_digest(text, cpu, digest_key())}
    path = Path(path)
    atomic_write_bytes(path, safetensors.torch.save(cpu, metadata=metadata))
    return path


def read_container(
    path: str | os.PathLike, kind: str, version: int, error: type[Exception]
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read and verify a file written by :func:`write_container`.

    The checks, in order: safetensors' framing and tensors, our metadata, the
    ``format_version``, the digest and the ``format``.

    Raises
    ------
    error
        With a message naming the file and the problem, on any failed check.
    FileNotFoundError
        No file at ``path``.
    """
    what = "a neural-kmeans checkpoint" if "checkpoint" in kind else "a neural-kmeans model"
    if _header_has_line_breaks_or_tabs(path):
        raise error(
            f"{path} is not {what} file, or it is damaged: its header holds a tab or line "
            "break, which no written file has (a changed byte)"
        )
    try:
        with safetensors.safe_open(os.fspath(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except FileNotFoundError:
        raise
    except Exception as failure:  # safetensors raises its own SafetensorError
        raise error(
            f"{path} is not {what} file, or it is truncated or damaged ({failure})"
        ) from None
    try:
        text, digest = metadata[HEADER_KEY], metadata[DIGEST_KEY]
        header = json.loads(text)
        found_kind, found_version = header["format"], header["format_version"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise error(
            f"{path} is not {what} file, or it is damaged: its header cannot be read"
        ) from None
    key = digest_key()
    keyed = isinstance(digest, str) and digest.startswith(KEYED_PREFIX)
    if keyed and key is None:
        raise error(
            f"{path} carries a keyed digest (HMAC): set {KEY_VARIABLE} to the key it was "
            "written with to read it"
        )
    if key is not None and not keyed:
        raise error(
            f"{path} has no keyed digest, and {KEY_VARIABLE} is set, so only files written "
            f"with that key are read: write it again with the key, or unset {KEY_VARIABLE}"
        )
    digest_ok = hmac.compare_digest(str(digest), file_digest(text, tensors, key))
    if keyed and not digest_ok:
        raise error(
            f"{path}: its keyed digest does not match: the file was changed after it was "
            f"written, or written with another key than {KEY_VARIABLE}'s"
        )
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


def _header_has_line_breaks_or_tabs(path: str | os.PathLike) -> bool:
    """Whether the safetensors header of ``path`` holds a tab, line feed or carriage
    return. safetensors writes its JSON header without whitespace, padded with spaces to
    8 bytes, and JSON escapes those characters within strings; a padding space changed
    into one of them parses as the same header (JSON's whitespace), where the digest,
    taken of what the header says, cannot see it."""
    try:
        with open(path, "rb") as file:
            size = int.from_bytes(file.read(8), "little")
            header = file.read(min(size, 100_000_000))
    except FileNotFoundError:
        raise
    except OSError:
        return False  # safetensors' own reading names the problem
    return any(byte in header for byte in b"\t\n\r")


def digest_key() -> bytes | None:
    """The user's key for keyed digests (:data:`KEY_VARIABLE`), or None."""
    value = os.environ.get(KEY_VARIABLE)
    return value.encode("utf-8") if value else None


def file_digest(header_text: str, tensors: dict[str, torch.Tensor], key: bytes | None) -> str:
    """The digest a file carries, of the header text and each tensor's name, dtype, shape
    and bytes: ``sha256:<hex>``, or ``hmac-sha256:<hex>`` (HMAC-SHA-256) with a key."""
    digest: Any = hashlib.sha256() if key is None else hmac.new(key, digestmod="sha256")
    digest.update(b"neural-kmeans container\0")
    digest.update(header_text.encode("utf-8") + b"\0")
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return ("sha256:" if key is None else KEYED_PREFIX) + digest.hexdigest()


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
    except OSError as problem:  # named after the file the caller asked for
        temporary.unlink(missing_ok=True)
        reason = problem.strerror or str(problem)
        raise type(problem)(problem.errno or errno.EIO, reason, os.fspath(path)) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # Windows cannot open folders; the rename is durable
        descriptor = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Remove the temporary files that :func:`atomic_write_bytes` left for ``path`` when
    its process was killed (``.<name>.<pid>.tmp`` of a process that no longer runs)."""
    path = Path(path)
    for candidate in path.parent.glob(f".{path.name}.*.tmp"):
        pid = candidate.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not process_is_running(int(pid)):
            with contextlib.suppress(OSError):
                candidate.unlink()


def process_is_running(pid: int) -> bool:
    """Whether a process of id ``pid`` runs on this machine (the owner of a lock or
    temporary file)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process, or a number we cannot ask about
    return True


# ------------------------------------------------------------ JSON of the estimator
def params_to_json(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The constructor parameters as JSON, and the array ones as tensors.

    A callable network becomes ``{"factory": "module.qualname"}``; an ``init`` array
    the tensor ``param.init``; callbacks, callables and numpy random generators, which
    are code or state, ``{"not saved": "<type>"}``.
    """
    out: dict[str, Any] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, value in params.items():
        if name == "network" and callable(value):
            out[name] = network_to_json(value)
        elif name == "init" and not isinstance(value, str) and not callable(value):
            tensors["param.init"] = torch.as_tensor(np.asarray(value, dtype=np.float64))
            out[name] = {"array": "param.init"}
        elif isinstance(value, os.PathLike):
            out[name] = os.fspath(value)
        elif name == "image_shape" and value is not None:
            out[name] = [int(s) for s in value]
        elif name == "learned_params" and value is not None:
            out[name] = {k: plain(v) for k, v in value.items()}
        elif isinstance(value, np.generic):
            out[name] = value.item()
        elif isinstance(value, torch.device):
            out[name] = str(value)
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
        elif name == "init" and isinstance(value, dict) and "array" in value:
            out[name] = tensors[value["array"]].numpy()
        elif name == "image_shape" and value is not None:
            out[name] = tuple(value)
        elif isinstance(value, dict) and name != "learned_params":  # not saved: callbacks, ...
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


def history_to_json(history: list[dict], tensors: dict[str, torch.Tensor]) -> list[dict]:
    """``history_`` as JSON records; its recorded centroids, when every record has them,
    go into ``tensors["history.centroids"]`` as one (n_iter, K, d) tensor."""
    records = [{k: plain(v) for k, v in r.items() if k != "centroids"} for r in history]
    centroids = [torch.as_tensor(np.asarray(r["centroids"])) for r in history if "centroids" in r]
    if centroids and len(centroids) == len(history):
        tensors["history.centroids"] = torch.stack(centroids)
    return records


def history_from_json(records: list[dict], tensors: dict[str, torch.Tensor]) -> list[dict]:
    """Invert :func:`history_to_json`."""
    history = [dict(record) for record in records]
    centroids = tensors.get("history.centroids")
    if centroids is not None:
        for record, values in zip(history, centroids, strict=True):
            record["centroids"] = values.numpy()
    return history


def plain(value: Any) -> Any:
    """``value`` with numpy scalars, tuples and tensors turned into JSON's types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value
