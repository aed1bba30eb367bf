"""Where the commands write: output folders and files checked before any work, JSON
documents, and the error log of an unexpected failure."""

from __future__ import annotations

import json
import os
import re
import tempfile
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from neural_kmeans.app.errors import UsageError


def _slug(text: str) -> str:
    name = Path(text).stem if ("/" in text or os.sep in text or "." in text) else text
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "data"


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _new_path(base: Path, suffix: str = "") -> Path:
    candidate = base.with_name(base.name + suffix)
    number = 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{number}{suffix}")
        number += 1
    return candidate


def check_out_dir(out: str | None, default_name: str, overwrite: bool) -> Path:
    """The output folder to use, checked but not created (see :func:`make_out_dir`).

    Never a non-empty existing folder unless ``overwrite``.

    Parameters
    ----------
    out : str or None
        The user's ``--out``; None for a new folder ``runs/<default_name>-<time>``.
    default_name : str
    overwrite : bool

    Returns
    -------
    Path

    Raises
    ------
    UsageError
        When ``out`` is a file or a non-empty folder (without ``overwrite``).
    """
    if out is None:
        path = _new_path(Path("runs") / f"{default_name}-{_timestamp()}")
    else:
        path = Path(out).expanduser()
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {str(path)!r} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise UsageError(
                f"--out {str(path)!r} exists and is not empty; choose another folder or "
                "pass --overwrite to write into it"
            )
    return path


def make_out_dir(path: Path, context: dict[str, Any]) -> Path:
    """Create the output folder (once the inputs are known to be good) and note it for
    the error log.

    Raises
    ------
    UsageError
        When the folder cannot be made.
    """
    if not path.exists() and path.parent == Path("runs"):
        path = _new_path(path)  # another run took the name meanwhile
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the output folder {str(path)!r}: {error}") from None
    context["out"] = path
    return path


def check_out_file(
    out: str | None, default_name: str, overwrite: bool, *, suffixes: tuple[str, ...]
) -> Path:
    """An output file's path, checked before any work: one of ``suffixes`` (written
    exactly as named), never a folder, never an existing file unless ``overwrite``.
    Without ``out``: a new ``runs/<default_name>-<time>`` with the first suffix."""
    if out is None:
        return _new_path(Path("runs") / f"{default_name}-{_timestamp()}", suffixes[0])
    path = Path(out).expanduser()
    if path.suffix.lower() not in suffixes:
        raise UsageError(
            f"{str(path)!r} must end in {' or '.join(suffixes)}; for example "
            f"{path.with_suffix(suffixes[0]).name}"
        )
    if path.is_dir():
        raise UsageError(f"{str(path)!r} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UsageError(f"{str(path)!r} exists; choose another name or pass --overwrite")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json(document: Any, path: Path) -> Path:
    """Write ``document`` as indented JSON (numpy scalars and arrays converted)."""
    path.write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
    return path


def crash_log(error: BaseException, out: Path | None) -> Path | None:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        if out is not None and out.is_dir():
            path = out / "error.log"
        else:
            handle, name = tempfile.mkstemp(prefix="neural-kmeans-error-", suffix=".log")
            os.close(handle)
            path = Path(name)
        path.write_text(text)
    except OSError:
        return None
    return path
