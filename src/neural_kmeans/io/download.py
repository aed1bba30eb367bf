"""Find, download and verify the MNIST-like IDX files.

MNIST and Fashion-MNIST are distributed as four gzip-compressed IDX files each
(``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``). This module looks
for them, in order, in

1. the ``data_dir`` given by the caller (``data_dir/<dataset>/`` or ``data_dir`` itself),
2. ``$NEURAL_KMEANS_DATA/<dataset>/`` (a folder holding ``mnist/`` and ``fashion-mnist/``),
3. the system folders in :data:`SYSTEM_DATA_DIRS` (Debian's ``dataset-fashion-mnist``),
4. the user cache, :func:`default_cache_dir` ``/<dataset>/``,

and, when none holds a good copy, downloads the file into the cache from the
mirrors in :data:`MIRRORS` (or from ``$NEURAL_KMEANS_MIRROR``). Every file, found or
downloaded, is checked against the SHA-256 digest of its *decompressed* content
(:data:`SHA256`), so any faithful mirror works whatever its gzip settings, and a
file that fails the check is reported and never used. Downloads go to a temporary
name in the cache folder and are renamed only once verified, so an interrupted or
corrupt download leaves nothing behind.

Environment variables
---------------------
``NEURAL_KMEANS_DATA``
    Folder holding ``mnist/`` and ``fashion-mnist/`` with the IDX files.
``NEURAL_KMEANS_CACHE``
    Cache folder (default: the platform's user cache, e.g. ``~/.cache/neural-kmeans``).
``NEURAL_KMEANS_MIRROR``
    Base URL(s), separated by whitespace, replacing the default mirrors; files are
    then fetched from ``<mirror>/<dataset>/<file>.gz``.
``NEURAL_KMEANS_TIMEOUT``
    Seconds a connection or a read may stall before a try fails (default 5).
``NEURAL_KMEANS_RETRIES``
    Extra tries per mirror after a network failure (default 2).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pooch

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "ENV_CACHE",
    "ENV_DATA",
    "ENV_MIRROR",
    "ENV_RETRIES",
    "ENV_TIMEOUT",
    "IDX_FILES",
    "MIRRORS",
    "SHA256",
    "SYSTEM_DATA_DIRS",
    "DatasetNotFoundError",
    "VerificationError",
    "decompressed_content",
    "default_cache_dir",
    "download_file",
    "fetch_file",
    "fetch_idx",
    "mirror_urls",
    "search_locations",
]

logger = logging.getLogger(__name__)

ENV_DATA = "NEURAL_KMEANS_DATA"
ENV_CACHE = "NEURAL_KMEANS_CACHE"
ENV_MIRROR = "NEURAL_KMEANS_MIRROR"
ENV_TIMEOUT = "NEURAL_KMEANS_TIMEOUT"
ENV_RETRIES = "NEURAL_KMEANS_RETRIES"

#: Seconds a connection attempt or a stalled read may take before a try fails.
DEFAULT_TIMEOUT = 5.0
#: Extra tries per mirror after a network failure (so ``1 + DEFAULT_RETRIES`` tries).
DEFAULT_RETRIES = 2
#: Pause before the first retry; doubled for each further one, capped at 4 s.
_BACKOFF_S = 0.5

#: IDX file names (without ``.gz``) of each split: ``(images, labels)``.
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _parse_sums(text: str) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<digest>  <name>`` lines) into ``{name: digest}``."""
    return {name: digest for digest, name in (line.split() for line in text.strip().splitlines())}


#: SHA-256 of the *decompressed* IDX files of the original distributions
#: (MNIST: Y. LeCun et al.; Fashion-MNIST: Zalando Research).
SHA256: dict[str, dict[str, str]] = {
    "mnist": _parse_sums(
        """
        ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
        65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
        0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
        ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte
        """
    ),
    "fashion-mnist": _parse_sums(
        """
        c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888  train-images-idx3-ubyte
        bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9  train-labels-idx1-ubyte
        5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b  t10k-images-idx3-ubyte
        0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34  t10k-labels-idx1-ubyte
        """
    ),
}

#: Default base URLs, tried in order; a file is fetched from ``<base><file>.gz``.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

#: Folders where system packages install the files (Debian's ``dataset-fashion-mnist``).
SYSTEM_DATA_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_SIZE = 1 << 16

# Files already verified in this process: (real path, size, mtime_ns, digest).
_verified: set[tuple[str, int, int, str]] = set()


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are not on disk and could not be downloaded."""


class VerificationError(ValueError):
    """A file's decompressed content does not match its known SHA-256 digest."""


def default_cache_dir() -> Path:
    """Return the folder where downloaded data sets are kept.

    Returns
    -------
    Path
        ``$NEURAL_KMEANS_CACHE`` when set, else the platform's user cache folder for
        ``neural-kmeans`` (``~/.cache/neural-kmeans`` on Linux). It may not exist yet.
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    return Path(pooch.os_cache("neural-kmeans")).expanduser()


def _check_known(dataset: str, filename: str | None = None) -> None:
    if dataset not in SHA256:
        known = ", ".join(SHA256)
        raise ValueError(f"no IDX files are known for data set {dataset!r}; known: {known}")
    if filename is not None and filename not in SHA256[dataset]:
        known = ", ".join(SHA256[dataset])
        raise ValueError(f"unknown {dataset} file {filename!r}; expected one of: {known}")


def search_locations(
    dataset: str, data_dir: str | os.PathLike[str] | None = None
) -> list[tuple[Path, str]]:
    """List the folders searched for a data set's files, in order.

    Parameters
    ----------
    dataset : str
        ``"mnist"`` or ``"fashion-mnist"``.
    data_dir : path-like, optional
        Folder given by the caller; both ``data_dir/<dataset>`` and ``data_dir``
        itself are searched.

    Returns
    -------
    list of (Path, str)
        Each folder with a short description of where it comes from. The cache
        folder comes last.
    """
    _check_known(dataset)
    places: list[tuple[Path, str]] = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        places.append((root / dataset, "data_dir"))
        places.append((root, "data_dir"))
    env = os.environ.get(ENV_DATA)
    if env:
        places.append((Path(env).expanduser() / dataset, f"${ENV_DATA}"))
    for folder in SYSTEM_DATA_DIRS.get(dataset, ()):
        places.append((Path(folder), "system package"))
    places.append((default_cache_dir() / dataset, "cache"))
    return places


def mirror_urls(dataset: str, filename: str) -> list[str]:
    """Return the URLs a file is downloaded from, in the order they are tried.

    Parameters
    ----------
    dataset : str
        ``"mnist"`` or ``"fashion-mnist"``.
    filename : str
        Name of the file on the mirror, e.g. ``"t10k-labels-idx1-ubyte.gz"``.

    Returns
    -------
    list of str
        ``<mirror>/<dataset>/<filename>`` for each base URL in
        ``$NEURAL_KMEANS_MIRROR`` (whitespace-separated) when it is set, otherwise
        the default mirrors of :data:`MIRRORS`.
    """
    _check_known(dataset)
    env = os.environ.get(ENV_MIRROR, "").split()
    if env:
        return [f"{base.rstrip('/')}/{dataset}/{filename}" for base in env]
    return [f"{base.rstrip('/')}/{filename}" for base in MIRRORS[dataset]]


def decompressed_content(path: str | os.PathLike[str]) -> bytes:
    """Read a file, decompressing it when it is gzip data (whatever its name).

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    bytes
        The decompressed content.

    Raises
    ------
    VerificationError
        If the file starts like gzip data but is truncated or corrupt.
    """
    with open(path, "rb") as f:
        magic = f.read(2)
        f.seek(0)
        if magic != _GZIP_MAGIC:
            return f.read()
        try:
            with gzip.GzipFile(fileobj=f) as gz:
                return gz.read()
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise VerificationError(f"corrupt or truncated gzip data ({exc})") from exc


def _verify(content: bytes, dataset: str, filename: str) -> None:
    expected = SHA256[dataset][filename]
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise VerificationError(
            f"SHA-256 of the decompressed content is {actual[:16]}…, "
            f"expected {expected[:16]}… for {dataset}/{filename}"
        )


def _stat_key(path: Path, dataset: str, filename: str) -> tuple[str, int, int, str]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, SHA256[dataset][filename])


def _read_local(path: Path, dataset: str, filename: str) -> bytes:
    """Decompress a local file and verify it, skipping the hash if done before."""
    key = _stat_key(path, dataset, filename)
    content = decompressed_content(path)
    if key not in _verified:
        _verify(content, dataset, filename)
        _verified.add(key)
    return content


def _setting(value: float | None, env: str, default: float, kind: type) -> float:
    if value is None:
        raw = os.environ.get(env)
        if raw is None or not raw.strip():
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"${env} must be a {kind.__name__}, got {raw!r}") from None
    what = env.rsplit("_", 1)[-1].lower()
    if kind is float and not value > 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be 0 or more, got {value!r}")
    return value


def _make_downloader(url: str, timeout: float, progress: object) -> object:
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return pooch.HTTPDownloader(progressbar=progress, timeout=timeout, chunk_size=_CHUNK_SIZE)
    if scheme == "ftp":
        return pooch.FTPDownloader(progressbar=progress, timeout=timeout, chunk_size=_CHUNK_SIZE)
    raise ValueError(f"unsupported URL scheme {scheme!r} (use http, https or ftp)")


def _progress_bar(enabled: bool, filename: str) -> object:
    if not enabled:
        return False
    from tqdm.auto import tqdm

    # total=1 until pooch sets it from Content-Length: pooch tests the bar's truth value.
    return tqdm(desc=filename, total=1, unit="B", unit_scale=True, leave=True, file=sys.stderr)


def _http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


class _DownloadFailed(Exception):
    def __init__(self, failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.failures = failures


def _download(
    dataset: str,
    filename: str,
    dest: Path,
    *,
    progressbar: bool,
    timeout: float,
    retries: int,
) -> tuple[Path, bytes]:
    """Download, verify and atomically store one file; return its path and content."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _DownloadFailed([f"cannot create the cache folder {dest}: {exc}"]) from exc
    failures: list[str] = []
    for url in mirror_urls(dataset, filename + ".gz"):
        error, tries = "", 0
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(_BACKOFF_S * 2 ** (attempt - 1), 4.0))
            tries += 1
            fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dest)
            os.close(fd)
            tmp = Path(tmp_name)
            progress = _progress_bar(progressbar, filename)
            try:
                logger.info("downloading %s (try %d of %d)", url, attempt + 1, retries + 1)
                downloader = _make_downloader(url, timeout, progress)
                downloader(url, tmp_name, None)
                content = decompressed_content(tmp)
                _verify(content, dataset, filename)
                with open(tmp, "rb") as f:
                    is_gzip = f.read(2) == _GZIP_MAGIC
                final, other = dest / (filename + ".gz"), dest / filename
                if not is_gzip:
                    final, other = other, final
                os.replace(tmp, final)
                other.unlink(missing_ok=True)  # a stale copy of the other form would shadow it
                _verified.add(_stat_key(final, dataset, filename))
                return final, content
            except VerificationError as exc:
                # The mirror serves a bad file: another try would get the same one.
                error = f"rejected, {exc}"
                break
            except ValueError as exc:
                error = str(exc)
                break
            except OSError as exc:  # requests' errors are OSErrors too
                error = f"{type(exc).__name__}: {exc}"
                status = _http_status(exc)
                if status is not None and 400 <= status < 500:
                    break  # not there; retrying will not help
            finally:
                if progress is not False:
                    progress.close()
                tmp.unlink(missing_ok=True)
        failures.append(f"{url}: {error}" + (f" ({tries} tries)" if tries > 1 else ""))
    raise _DownloadFailed(failures)


def _not_found_message(
    dataset: str,
    filename: str,
    looked: Sequence[str],
    download_note: str,
    failures: Sequence[str] = (),
) -> str:
    lines = [f"Could not get the {dataset} file {filename}.gz (or {filename})."]
    if looked:
        lines.append("Looked in:")
        lines += [f"  - {entry}" for entry in looked]
    lines.append(download_note)
    lines += [f"  - {failure}" for failure in failures]
    cache = default_cache_dir() / dataset
    lines += [
        "To provide the files, do one of:",
        f"  - pass data_dir=FOLDER, a folder holding {dataset}/ (or the files themselves);",
        f"  - set {ENV_DATA}=FOLDER, a folder holding mnist/ and fashion-mnist/ with the gzip"
        " IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,"
        " t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz);",
        f"  - set {ENV_MIRROR}=URL, a reachable mirror serving URL/{dataset}/<file>.gz;",
        f"  - or copy the files into the cache folder {cache}.",
    ]
    return "\n".join(lines)


def _obtain(
    dataset: str,
    filename: str,
    data_dir: str | os.PathLike[str] | None,
    *,
    download: bool,
    progressbar: bool | None,
    timeout: float | None,
    retries: int | None,
) -> tuple[Path, bytes]:
    _check_known(dataset, filename)
    looked: list[str] = []
    env_noted = bool(os.environ.get(ENV_DATA))
    for folder, origin in search_locations(dataset, data_dir):
        if not env_noted and origin != "data_dir":
            looked.append(f"(${ENV_DATA} is not set)")
            env_noted = True
        found = False
        for candidate in (folder / (filename + ".gz"), folder / filename):
            if not candidate.is_file():
                continue
            found = True
            try:
                return candidate, _read_local(candidate, dataset, filename)
            except (VerificationError, OSError) as exc:
                why = "failed verification" if isinstance(exc, VerificationError) else "unreadable"
                message = f"{candidate} {why} and is not used: {exc}"
                warnings.warn(message, UserWarning, stacklevel=2)
                looked.append(f"{candidate} ({origin}): rejected, {exc}")
        if not found:
            looked.append(f"{folder} ({origin}): not there")
    if not download:
        note = "Downloading was disabled (download=False)."
        raise DatasetNotFoundError(_not_found_message(dataset, filename, looked, note))
    timeout = float(_setting(timeout, ENV_TIMEOUT, DEFAULT_TIMEOUT, float))
    retries = int(_setting(retries, ENV_RETRIES, DEFAULT_RETRIES, int))
    if progressbar is None:
        progressbar = sys.stderr is not None and sys.stderr.isatty()
    dest = default_cache_dir() / dataset
    try:
        return _download(
            dataset, filename, dest, progressbar=progressbar, timeout=timeout, retries=retries
        )
    except _DownloadFailed as exc:
        message = _not_found_message(dataset, filename, looked, "Downloading failed:", exc.failures)
        raise DatasetNotFoundError(message) from None


def fetch_idx(
    dataset: str,
    filename: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progressbar: bool | None = None,
    timeout: float | None = None,
    retries: int | None = None,
) -> bytes:
    """Return the verified, decompressed content of one IDX file.

    Parameters
    ----------
    dataset : str
        ``"mnist"`` or ``"fashion-mnist"``.
    filename : str
        IDX file name without ``.gz``, e.g. ``"t10k-images-idx3-ubyte"``.
    data_dir : path-like, optional
        Folder searched first (see :func:`search_locations`).
    download : bool, default=True
        Download into the cache when no good local copy exists.
    progressbar : bool, optional
        Show a download progress bar; default: when standard error is a terminal.
    timeout : float, optional
        Seconds a connection or a stalled read may take (default ``$NEURAL_KMEANS_TIMEOUT``
        or 5).
    retries : int, optional
        Extra tries per mirror after a network failure (default ``$NEURAL_KMEANS_RETRIES``
        or 2). A mirror whose file fails verification or answers 4xx is not retried.

    Returns
    -------
    bytes
        The decompressed IDX file.

    Raises
    ------
    DatasetNotFoundError
        If no good copy is found and downloading is disabled or fails; the message
        says where it looked and how to provide the files.
    """
    return _obtain(
        dataset,
        filename,
        data_dir,
        download=download,
        progressbar=progressbar,
        timeout=timeout,
        retries=retries,
    )[1]


def fetch_file(
    dataset: str,
    filename: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progressbar: bool | None = None,
    timeout: float | None = None,
    retries: int | None = None,
) -> Path:
    """Return the path of a verified local copy of one IDX file, downloading it if needed.

    Parameters are those of :func:`fetch_idx`.

    Returns
    -------
    Path
        The file (``.gz`` or uncompressed) whose decompressed content was verified.
    """
    return _obtain(
        dataset,
        filename,
        data_dir,
        download=download,
        progressbar=progressbar,
        timeout=timeout,
        retries=retries,
    )[0]


def download_file(
    dataset: str,
    filename: str,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    progressbar: bool | None = None,
    timeout: float | None = None,
    retries: int | None = None,
) -> Path:
    """Download one IDX file into the cache, even if a copy exists elsewhere.

    Parameters
    ----------
    dataset : str
        ``"mnist"`` or ``"fashion-mnist"``.
    filename : str
        IDX file name without ``.gz``.
    cache_dir : path-like, optional
        Cache root (default :func:`default_cache_dir`); the file goes to
        ``cache_dir/<dataset>/``.
    progressbar, timeout, retries
        As in :func:`fetch_idx`.

    Returns
    -------
    Path
        The verified file in the cache.

    Raises
    ------
    DatasetNotFoundError
        If every mirror fails.
    """
    _check_known(dataset, filename)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if progressbar is None:
        progressbar = sys.stderr is not None and sys.stderr.isatty()
    try:
        return _download(
            dataset,
            filename,
            root / dataset,
            progressbar=progressbar,
            timeout=float(_setting(timeout, ENV_TIMEOUT, DEFAULT_TIMEOUT, float)),
            retries=int(_setting(retries, ENV_RETRIES, DEFAULT_RETRIES, int)),
        )[0]
    except _DownloadFailed as exc:
        message = _not_found_message(dataset, filename, [], "Downloading failed:", exc.failures)
        raise DatasetNotFoundError(message) from None
