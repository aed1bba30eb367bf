"""Find, download and verify the MNIST-like IDX files.

MNIST and Fashion-MNIST are four gzip-compressed IDX files each (:data:`IDX_FILES`).
:func:`fetch_idx` looks for a file in the folders of :func:`search_locations` (the
caller's ``data_dir``, ``$NEURAL_KMEANS_DATA``, Debian's ``/usr/share/datasets``, then
the cache) and, when none holds a good copy, downloads it into the cache (as
``<dataset>/<file>.gz``, whatever the mirror's compression) with :mod:`pooch`, which
logs it, retries, shows the progress bar and writes atomically. Every file,
found or downloaded, is checked against the SHA-256 of its *decompressed* content
(:data:`SHA256`), so any faithful mirror works whatever its gzip settings; a file that
fails the check is reported and never used, and a download that fails it never enters
the cache. Decompression stops past the file's known size (:data:`IDX_SIZES`), so a gzip
bomb costs no more memory than the real file.

Environment variables
---------------------
``NEURAL_KMEANS_DATA``
    Folder holding ``mnist/`` and ``fashion-mnist/`` with the IDX files.
``NEURAL_KMEANS_CACHE``
    Cache folder (default: the platform's user cache, e.g. ``~/.cache/neural-kmeans``).
``NEURAL_KMEANS_MIRROR``
    Base URL(s), separated by whitespace, replacing the default mirrors (:data:`MIRRORS`);
    files are then fetched from ``<mirror>/<dataset>/<file>.gz``.
``NEURAL_KMEANS_TIMEOUT``
    Seconds a connection or a read may stall before a try fails (default 5).
``NEURAL_KMEANS_RETRIES``
    Extra tries per mirror after a network failure (default 2).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pooch

__all__ = [
    "IDX_FILES",
    "IDX_SIZES",
    "MIRRORS",
    "SHA256",
    "SYSTEM_DATA_DIRS",
    "DatasetNotFoundError",
    "VerificationError",
    "default_cache_dir",
    "fetch_idx",
    "search_locations",
]

ENV_DATA = "NEURAL_KMEANS_DATA"
ENV_CACHE = "NEURAL_KMEANS_CACHE"
ENV_MIRROR = "NEURAL_KMEANS_MIRROR"
ENV_TIMEOUT = "NEURAL_KMEANS_TIMEOUT"
ENV_RETRIES = "NEURAL_KMEANS_RETRIES"

#: Seconds a connection attempt or a stalled read may take before a try fails.
DEFAULT_TIMEOUT = 5.0
#: Extra tries per mirror after a network failure (so ``1 + DEFAULT_RETRIES`` tries).
DEFAULT_RETRIES = 2

#: IDX file names (without ``.gz``) of each split: ``(images, labels)``.
IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Size in bytes of each decompressed IDX file (the same in both data sets).
IDX_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte": 16 + 60000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60000,
    "t10k-images-idx3-ubyte": 16 + 10000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10000,
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
_DOWNLOADERS = {
    "http": pooch.HTTPDownloader,
    "https": pooch.HTTPDownloader,
    "ftp": pooch.FTPDownloader,
}


class DatasetNotFoundError(FileNotFoundError):
    """The data set's files are not on disk and could not be downloaded."""


class VerificationError(ValueError):
    """A file's decompressed content does not match its known SHA-256 digest."""


class _Rejected(Exception):
    """A mirror's answer that another try would not change: a 4xx status or a bad file."""


def _cache(urls: dict[str, str] | None = None, retries: int = 0) -> pooch.Pooch:
    """The cache as a :class:`pooch.Pooch`, ``urls`` its registry (``<dataset>/<file>`` to
    URL) without digests: pooch would check the archive, which differs between faithful
    mirrors; the content is checked by :func:`_verifying_downloader`."""
    urls = urls or {}
    return pooch.create(
        path=pooch.os_cache("neural-kmeans"),
        base_url="",
        env=ENV_CACHE,
        registry=dict.fromkeys(urls),
        urls=urls,
        retry_if_failed=retries,
    )


def default_cache_dir() -> Path:
    """Return the folder where downloaded data sets are kept.

    Returns
    -------
    Path
        ``$NEURAL_KMEANS_CACHE`` when set, else the platform's user cache folder for
        ``neural-kmeans`` (``~/.cache/neural-kmeans`` on Linux). It may not exist yet.
    """
    return _cache().abspath


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
        places += [(root / dataset, "data_dir"), (root, "data_dir")]
    if os.environ.get(ENV_DATA):
        places.append((Path(os.environ[ENV_DATA]).expanduser() / dataset, f"${ENV_DATA}"))
    places += [(Path(folder), "system package") for folder in SYSTEM_DATA_DIRS.get(dataset, ())]
    places.append((default_cache_dir() / dataset, "cache"))
    return places


def _mirror_urls(dataset: str, filename: str) -> list[str]:
    """The URLs of ``filename`` on each mirror, in the order they are tried."""
    env = os.environ.get(ENV_MIRROR, "").split()
    if env:
        return [f"{base.rstrip('/')}/{dataset}/{filename}" for base in env]
    return [f"{base.rstrip('/')}/{filename}" for base in MIRRORS[dataset]]


def _read_verified(path: Path, dataset: str, filename: str) -> bytes:
    """The content of ``path``, decompressed if it is gzip data (whatever its name), if it
    is the known ``dataset/filename``. Reading stops past the known size: a gzip bomb
    costs no more memory than the real file."""
    size = IDX_SIZES[filename]
    with open(path, "rb") as f:
        is_gzip = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        try:
            content = (gzip.GzipFile(fileobj=f) if is_gzip else f).read(size + 1)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise VerificationError(f"corrupt or truncated gzip data ({exc})") from exc
    if len(content) > size:
        raise VerificationError(f"damaged: its content is longer than {filename}'s {size:,} bytes")
    actual, expected = hashlib.sha256(content).hexdigest(), SHA256[dataset][filename]
    if actual != expected:
        raise VerificationError(
            f"SHA-256 of the decompressed content is {actual[:16]}…, "
            f"expected {expected[:16]}… for {dataset}/{filename}"
        )
    return content


def _setting(value: float | None, env: str, default: float, kind: type) -> float:
    if value is None:
        raw = os.environ.get(env, "").strip()
        try:
            value = kind(raw) if raw else default
        except ValueError:
            raise ValueError(f"${env} must be a {kind.__name__}, got {raw!r}") from None
    what = env.rsplit("_", 1)[-1].lower()
    if kind is float and not value > 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be 0 or more, got {value!r}")
    return value


def _verifying_downloader(
    url: str, dataset: str, filename: str, timeout: float, progressbar: bool
) -> Callable[[str, str, pooch.Pooch], None]:
    """Pooch's downloader for ``url``, checking the download before pooch renames it."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _DOWNLOADERS:
        raise _Rejected(f"unsupported URL scheme {scheme!r} (use http, https or ftp)")
    download = _DOWNLOADERS[scheme](progressbar=progressbar, timeout=timeout)

    def verified_download(url: str, output_file: str, pup: pooch.Pooch) -> None:
        try:
            download(url, output_file, pup)
        except OSError as exc:  # requests' errors are OSErrors too
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status is not None and 400 <= status < 500:  # not there: no retry
                raise _Rejected(f"{type(exc).__name__}: {exc}") from exc
            raise
        try:
            _read_verified(Path(output_file), dataset, filename)
        except VerificationError as exc:  # a retry would get the same file
            raise _Rejected(f"rejected, {exc}") from exc

    return verified_download


def _not_found_message(dataset: str, filename: str, looked: list[str], note: str) -> str:
    cache = default_cache_dir() / dataset
    return "\n".join(
        [
            f"Could not get the {dataset} file {filename}.gz (or {filename}).",
            "Looked in:",
            *(f"  - {entry}" for entry in looked),
            note,
            "To provide the files, do one of:",
            f"  - pass data_dir=FOLDER, a folder holding {dataset}/ (or the files themselves);",
            f"  - set {ENV_DATA}=FOLDER, a folder holding mnist/ and fashion-mnist/ with the gzip"
            " IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,"
            " t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz);",
            f"  - set {ENV_MIRROR}=URL, a reachable mirror serving URL/{dataset}/<file>.gz;",
            f"  - or copy the files into the cache folder {cache}.",
        ]
    )


def _download(
    dataset: str,
    filename: str,
    looked: list[str],
    progressbar: bool | None,
    timeout: float | None,
    retries: int | None,
) -> bytes:
    """Download a file into the cache from the first mirror that serves a good copy."""
    timeout = float(_setting(timeout, ENV_TIMEOUT, DEFAULT_TIMEOUT, float))
    retries = int(_setting(retries, ENV_RETRIES, DEFAULT_RETRIES, int))
    if progressbar is None:
        progressbar = sys.stderr is not None and sys.stderr.isatty()
    key, failures = f"{dataset}/{filename}.gz", ["Downloading failed:"]
    for url in _mirror_urls(dataset, filename + ".gz"):
        cache = _cache({key: url}, retries)
        try:
            (cache.abspath / key).unlink(missing_ok=True)  # it failed verification
            downloader = _verifying_downloader(url, dataset, filename, timeout, progressbar)
            return _read_verified(Path(cache.fetch(key, downloader=downloader)), dataset, filename)
        except _Rejected as exc:
            failures.append(f"  - {url}: {exc}")
        except (OSError, ValueError) as exc:
            failures.append(f"  - {url}: {type(exc).__name__}: {exc}")
    note = "\n".join(failures)
    raise DatasetNotFoundError(_not_found_message(dataset, filename, looked, note))


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
    _check_known(dataset, filename)
    looked = [] if os.environ.get(ENV_DATA) else [f"(${ENV_DATA} is not set)"]
    for folder, origin in search_locations(dataset, data_dir):
        found = [p for p in (folder / f"{filename}.gz", folder / filename) if p.is_file()]
        looked += [] if found else [f"{folder} ({origin}): not there"]
        for candidate in found:
            try:
                return _read_verified(candidate, dataset, filename)
            except (VerificationError, OSError) as exc:
                why = "failed verification" if isinstance(exc, VerificationError) else "unreadable"
                warnings.warn(f"{candidate} {why} and is not used: {exc}", stacklevel=2)
                looked.append(f"{candidate} ({origin}): rejected, {exc}")
    if not download:
        note = "Downloading was disabled (download=False)."
        raise DatasetNotFoundError(_not_found_message(dataset, filename, looked, note))
    return _download(dataset, filename, looked, progressbar, timeout, retries)
