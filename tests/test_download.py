"""Tests of neural_kmeans.io.download against a local HTTP mirror on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pooch
import pytest

from neural_kmeans.app.cli import main
from neural_kmeans.io import download
from neural_kmeans.io.datasets import load_dataset
from neural_kmeans.io.download import DatasetNotFoundError

TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IMAGES_GZ = "/mnist/t10k-images-idx3-ubyte.gz"
LABELS_GZ = "/mnist/t10k-labels-idx1-ubyte.gz"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, records each GET and can answer 503 a given number of times."""

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.requests.append(self.path)
            failures = server.fail.get(self.path, 0)
            if failures:
                server.fail[self.path] = failures - 1
        if failures:
            self.send_error(503, "try again later")
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Mirror:
    """A threaded HTTP server on 127.0.0.1 serving ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), partial(_Handler, directory=str(root))
        )
        self.server.daemon_threads = True
        self.server.lock = threading.Lock()
        self.server.requests = []
        self.server.fail = {}
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def requests(self) -> list[str]:
        with self.server.lock:
            return list(self.server.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, and no local copies anywhere else."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEURAL_KMEANS_CACHE", str(folder))
    monkeypatch.delenv("NEURAL_KMEANS_DATA", raising=False)
    monkeypatch.setattr(download, "SYSTEM_DATA_DIRS", {})
    return folder


@pytest.fixture
def mirror(shared_data: Path, tmp_path: Path, cache: Path, monkeypatch) -> Iterator[Mirror]:
    """A mirror holding a copy of the test split of both data sets."""
    root = tmp_path / "mirror"
    for dataset in ("mnist", "fashion-mnist"):
        (root / dataset).mkdir(parents=True)
        for name in TEST_FILES:
            shutil.copyfile(shared_data / dataset / f"{name}.gz", root / dataset / f"{name}.gz")
    server = Mirror(root)
    monkeypatch.setenv("NEURAL_KMEANS_MIRROR", server.url)
    yield server
    server.close()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _files(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden or temporary ones included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def test_download_then_cached(mirror: Mirror, cache: Path, shared_data: Path) -> None:
    ds = load_dataset("mnist", "test")
    assert ds.data.shape == (10000, 28, 28) and ds.data.dtype == np.uint8
    reference = load_dataset("mnist", "test", data_dir=shared_data)
    np.testing.assert_array_equal(ds.data, reference.data)
    np.testing.assert_array_equal(ds.target, reference.target)
    assert mirror.requests == [IMAGES_GZ, LABELS_GZ]
    assert _files(cache) == [f"mnist/{name}.gz" for name in TEST_FILES]

    again = load_dataset("mnist", "test")  # verified again, from the cache
    np.testing.assert_array_equal(again.target, reference.target)
    assert mirror.requests == [IMAGES_GZ, LABELS_GZ]


def test_fashion_mnist_download_with_progress_bar(mirror: Mirror, cache: Path, capsys) -> None:
    ds = load_dataset("fashion-mnist", "test", progressbar=True)
    assert ds.data.shape == (10000, 28, 28)
    assert np.bincount(ds.target).tolist() == [1000] * 10
    assert mirror.requests == [f"/fashion-mnist/{name}.gz" for name in TEST_FILES]
    assert capsys.readouterr().err.count("100%|") == 2  # pooch's bar, filled for each file
    assert _files(cache) == [f"fashion-mnist/{name}.gz" for name in TEST_FILES]


def test_any_faithful_gzip_is_accepted(mirror: Mirror, cache: Path) -> None:
    labels = mirror.root / LABELS_GZ.lstrip("/")
    content = gzip.decompress(labels.read_bytes())
    labels.write_bytes(gzip.compress(content, compresslevel=1, mtime=12345))
    images = mirror.root / IMAGES_GZ.lstrip("/")
    images.write_bytes(gzip.decompress(images.read_bytes()))  # served uncompressed
    ds = load_dataset("mnist", "test")
    assert ds.target.tolist() == list(np.frombuffer(content, np.uint8, offset=8))
    assert _files(cache) == [f"mnist/{name}.gz" for name in TEST_FILES]  # as served
    assert (cache / IMAGES_GZ.lstrip("/")).read_bytes() == images.read_bytes()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _alter(path: Path) -> None:
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[5000] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(content), compresslevel=1))


@pytest.mark.parametrize("spoil", [_truncate, _alter], ids=["truncated", "altered"])
def test_bad_file_on_mirror_is_rejected(
    mirror: Mirror, cache: Path, monkeypatch: pytest.MonkeyPatch, spoil
) -> None:
    monkeypatch.setenv("NEURAL_KMEANS_RETRIES", "2")
    spoil(mirror.root / IMAGES_GZ.lstrip("/"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "test")
    message = str(info.value)
    assert f"{mirror.url}{IMAGES_GZ}: rejected" in message
    assert ("truncated" in message) if spoil is _truncate else ("SHA-256" in message)
    assert mirror.requests == [IMAGES_GZ]  # a bad file is not fetched again
    assert _files(cache) == []  # neither the file nor a temporary one is left


def test_corrupt_cache_file_is_replaced(mirror: Mirror, cache: Path) -> None:
    (cache / "mnist").mkdir(parents=True)
    (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bgarbage")
    with pytest.warns(UserWarning, match="failed verification and is not used"):
        ds = load_dataset("mnist", "test")
    assert ds.target.shape == (10000,)
    assert mirror.requests == [IMAGES_GZ, LABELS_GZ]
    assert _files(cache) == [f"mnist/{name}.gz" for name in TEST_FILES]


def test_transient_failure_is_retried(
    mirror: Mirror, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURAL_KMEANS_RETRIES", "1")
    mirror.server.fail[LABELS_GZ] = 1
    assert load_dataset("mnist", "test").target.shape == (10000,)
    assert mirror.requests == [IMAGES_GZ, LABELS_GZ, LABELS_GZ]
    mirror.server.fail[IMAGES_GZ] = 5
    shutil.rmtree(cache)
    with pytest.raises(DatasetNotFoundError, match="503"):
        load_dataset("mnist", "test")
    assert mirror.requests.count(IMAGES_GZ) == 1 + 2


def test_missing_file_is_not_retried(
    mirror: Mirror, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURAL_KMEANS_RETRIES", "3")
    (mirror.root / LABELS_GZ.lstrip("/")).unlink()
    with pytest.raises(DatasetNotFoundError, match="404"):
        load_dataset("mnist", "test")
    assert mirror.requests == [IMAGES_GZ, LABELS_GZ]
    assert _files(cache) == ["mnist/t10k-images-idx3-ubyte.gz"]


def test_next_mirror_is_tried(mirror: Mirror, cache: Path, monkeypatch) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("NEURAL_KMEANS_MIRROR", f"{dead} {mirror.url}/")
    assert load_dataset("mnist", "test").data.shape == (10000, 28, 28)
    assert mirror.requests == [IMAGES_GZ, LABELS_GZ]


def test_unreachable_mirror_gives_one_clear_error(cache: Path, monkeypatch) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("NEURAL_KMEANS_MIRROR", url)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "train")
    message = str(info.value)
    assert "Could not get the mnist file train-images-idx3-ubyte.gz" in message
    assert f"{cache / 'mnist'} (cache): not there" in message
    assert f"{url}/mnist/train-images-idx3-ubyte.gz: ConnectionError" in message
    for fix in ("data_dir=", "NEURAL_KMEANS_DATA=", "NEURAL_KMEANS_MIRROR="):
        assert fix in message
    assert _files(cache) == []


def test_no_network_on_the_command_line_is_one_error_line(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("NEURAL_KMEANS_MIRROR", f"http://127.0.0.1:{_closed_port()}")
    assert main(["run", "--dataset", "fashion-mnist", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Could not get the fashion-mnist file") and err.count("\n") == 1
    assert "Looked in:" in err and "To provide the files, do one of:" in err


def test_stalled_mirror_times_out(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # connections are queued but never answered
        monkeypatch.setenv("NEURAL_KMEANS_MIRROR", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("NEURAL_KMEANS_TIMEOUT", "0.5")
        with pytest.raises(DatasetNotFoundError, match="timed out"):
            load_dataset("fashion-mnist", "test")
    assert _files(cache) == []


def test_no_download_makes_no_request(mirror: Mirror, cache: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"disabled \(download=False\)"):
        load_dataset("mnist", "test", download=False)
    assert mirror.requests == []


def test_system_folder_is_searched(shared_data: Path, cache: Path, monkeypatch) -> None:
    monkeypatch.setattr(
        download, "SYSTEM_DATA_DIRS", {"fashion-mnist": (shared_data / "fashion-mnist",)}
    )
    assert load_dataset("fashion-mnist", "test", download=False).data.shape[0] == 10000
    assert not cache.exists()


def test_search_order(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURAL_KMEANS_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(download, "SYSTEM_DATA_DIRS", {"fashion-mnist": (tmp_path / "deb",)})
    places = download.search_locations("fashion-mnist", tmp_path / "given")
    assert places == [
        (tmp_path / "given" / "fashion-mnist", "data_dir"),
        (tmp_path / "given", "data_dir"),
        (tmp_path / "env" / "fashion-mnist", "$NEURAL_KMEANS_DATA"),
        (tmp_path / "deb", "system package"),
        (cache / "fashion-mnist", "cache"),
    ]
    assert [p for p, _ in download.search_locations("mnist")] == [
        tmp_path / "env" / "mnist",
        cache / "mnist",
    ]


def test_default_mirrors_and_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURAL_KMEANS_MIRROR", raising=False)
    assert download._mirror_urls("mnist", "a.gz") == [
        "https://ossci-datasets.s3.amazonaws.com/mnist/a.gz",
        "https://storage.googleapis.com/cvdf-datasets/mnist/a.gz",
    ]
    assert download._mirror_urls("fashion-mnist", "a.gz") == [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/a.gz"
    ]
    monkeypatch.delenv("NEURAL_KMEANS_CACHE")
    assert download.default_cache_dir() == Path(pooch.os_cache("neural-kmeans"))
    monkeypatch.setenv("NEURAL_KMEANS_CACHE", "/somewhere/else")
    assert download.default_cache_dir() == Path("/somewhere/else")


def test_bad_settings_and_names(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURAL_KMEANS_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"\$NEURAL_KMEANS_TIMEOUT must be a float"):
        download.fetch_idx("mnist", "t10k-labels-idx1-ubyte")
    monkeypatch.setenv("NEURAL_KMEANS_TIMEOUT", "1")
    with pytest.raises(ValueError, match="retries must be 0 or more"):
        download.fetch_idx("mnist", "t10k-labels-idx1-ubyte", retries=-1)
    with pytest.raises(ValueError, match="known: mnist, fashion-mnist"):
        download.fetch_idx("cifar", "t10k-labels-idx1-ubyte")
    with pytest.raises(ValueError, match="unknown mnist file 'labels'"):
        download.fetch_idx("mnist", "labels")
    monkeypatch.setenv("NEURAL_KMEANS_MIRROR", "file:///tmp")
    with pytest.raises(DatasetNotFoundError, match="unsupported URL scheme 'file'"):
        download.fetch_idx("mnist", "t10k-labels-idx1-ubyte")
    assert _files(cache) == []


def test_gzip_bomb_on_mirror_is_rejected_and_not_cached(mirror: Mirror, cache: Path) -> None:
    bomb = gzip.compress(bytes(1 << 26), compresslevel=1)  # 64 MiB of zeros for a 10 kB file
    (mirror.root / LABELS_GZ.lstrip("/")).write_bytes(bomb)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", "test")
    assert f"{LABELS_GZ}: rejected, damaged: its content is longer than" in str(info.value)
    assert mirror.requests == [IMAGES_GZ, LABELS_GZ]
    assert _files(cache) == ["mnist/t10k-images-idx3-ubyte.gz"]
