"""Where the commands write: output folders and files checked before any work, JSON
documents, and the error log of an unexpected failure."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from neural_kmeans.app.errors import UsageError
from neural_kmeans.io.container import process_is_running


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
    """The output folder to use, checked but not created (see :func:`make_out_dir`): the
    user's ``--out`` (never a file, nor a non-empty folder unless ``overwrite``; else a
    UsageError), or None for a new folder ``runs/<default_name>-<time>``."""
    if out is None:
        path = _new_path(Path("runs") / f"{default_name}-{_timestamp()}")
    else:
        path = Path(out).expanduser()
        check_names(path, "--out")
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {str(path)!r} exists and is not a folder")
        check_writable_place(path, "--out")
        if path.is_dir() and _contents(path) and not overwrite:
            raise UsageError(
                f"--out {str(path)!r} exists and is not empty; choose another folder or "
                "pass --overwrite to write into it"
            )
    return path


LOCK = ".neural-kmeans.lock"
#: Path components longer than this are refused before any work (most file systems).
MAX_NAME = 255


class OutputFolder:
    """A command's output folder, claimed before the work and filled at the end.

    The folder is created exclusively (or, when it exists and may be written into, claimed
    by a lock file that a second run cannot create), so two runs never mix their outputs;
    the command writes into a hidden staging folder inside it, moved into place file by
    file only when everything is written (:meth:`commit`). A failure removes the staging
    folder, and the folder itself when this run made it (:meth:`abandon`): nothing is
    left behind but, after an unexpected error, ``error.log``.
    """

    def __init__(self, path: Path, created: bool) -> None:
        self.path, self.created = path, created
        self.staging = path / f".partial-{os.getpid()}"

    def commit(self) -> None:
        for item in sorted(self.staging.iterdir()):
            target = self.path / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
        self.staging.rmdir()
        self.release()

    def abandon(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self.release()
        if self.created and not any(self.path.iterdir()):
            self.path.rmdir()

    def release(self) -> None:
        (self.path / LOCK).unlink(missing_ok=True)


def make_out_dir(path: Path, context: dict[str, Any], overwrite: bool = False) -> Path:
    """Claim the output folder (once the inputs are known to be good) and return the
    staging folder to write into (see :class:`OutputFolder`); a UsageError when the
    folder cannot be made or written, or another run is writing into it."""
    check_names(path, "--out")
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while not created:
            try:
                path.mkdir()
                created = True
            except FileExistsError:
                if path.parent != Path("runs") or (path.is_dir() and not any(path.iterdir())):
                    break
                path = _new_path(path)  # another run took the default name meanwhile
        _claim(path / LOCK)
        if not created and not overwrite and _contents(path):
            (path / LOCK).unlink(missing_ok=True)
            raise UsageError(
                f"--out {str(path)!r} was filled by another run meanwhile; choose another "
                "folder or pass --overwrite to write into it"
            )
    except FileExistsError:
        raise UsageError(
            f"--out {str(path)!r} is being written by another run ({LOCK} is there); wait "
            "for it, or choose another folder"
        ) from None
    except OSError as error:
        raise UsageError(
            f"cannot write into the output folder {str(path)!r}: {error.strerror or error}; "
            "choose a folder you can write to"
        ) from None
    for leftover in path.glob(".partial-*"):  # of runs that were killed
        pid = leftover.name.removeprefix(".partial-")
        if pid.isdigit() and not process_is_running(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
    folder = OutputFolder(path, created)
    context["outputs"] = folder
    context["out"] = path
    try:
        folder.staging.mkdir()
    except OSError as error:
        folder.abandon()
        raise UsageError(f"cannot write into {str(path)!r}: {error.strerror or error}") from None
    return folder.staging


def _contents(path: Path) -> list[Path]:
    """A folder's entries but a run's lock and staging folders (which are not outputs)."""
    return [p for p in path.iterdir() if p.name != LOCK and not p.name.startswith(".partial-")]


def _claim(lock: Path) -> None:
    """Create ``lock`` exclusively with this process's id; a lock whose process no
    longer runs (a killed run) is taken over. Raises FileExistsError when held."""
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock.read_text(errors="replace").strip() if lock.is_file() else ""
            if not holder.isdigit() or process_is_running(int(holder)):
                raise
            lock.unlink(missing_ok=True)
            continue
        os.write(descriptor, str(os.getpid()).encode())
        os.close(descriptor)
        return
    raise FileExistsError(lock)


def check_names(path: Path, option: str) -> None:
    """Refuse a path with a component too long for the file system, before any work."""
    for part in path.parts:
        if len(os.fsencode(part)) > MAX_NAME:
            raise UsageError(
                f"{option} {str(path)[:60]!r}...: a name in it is {len(part)} characters "
                f"long, more than file systems allow ({MAX_NAME}); choose a shorter one"
            )


def check_writable_place(path: Path, option: str) -> None:
    """Refuse, before any work, a ``path`` that cannot be made or written: its nearest
    existing folder must be a folder this process may write into."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(
            f"{option} {str(path)!r}: {str(existing)!r} is a file, so no folder can be made "
            "there; choose another place"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(
            f"{option} {str(path)!r}: cannot write into {str(existing)!r} (permission "
            "denied); choose a folder you can write to"
        )


def write_file_atomically(path: Path, write: Any) -> Path:
    """Call ``write(temporary)`` then rename the temporary file to ``path``: a reader
    sees no file or the whole file; a failure leaves nothing."""
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:  # named after the file asked for; numpy's short writes too
        reason = error.strerror or f"the file could not be written whole ({error})"
        raise OSError(error.errno or errno.EIO, reason, str(path)) from None
    finally:
        temporary.unlink(missing_ok=True)
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
    check_names(path, "output file")
    if path.suffix.lower() not in suffixes:
        raise UsageError(
            f"{str(path)!r} must end in {' or '.join(suffixes)}; for example "
            f"{path.with_suffix(suffixes[0]).name}"
        )
    if path.is_dir():
        raise UsageError(f"{str(path)!r} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UsageError(f"{str(path)!r} exists; choose another name or pass --overwrite")
    if path.exists() and not path.is_file():
        raise UsageError(f"{str(path)!r} is not a regular file; give the name of a file")
    check_writable_place(path.parent, "output file")
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
