"""Hostile and damaged data files: each gets one clear error line, before any large
allocation, through load_dataset and through the command line."""

from __future__ import annotations

import io
import os
import shutil
import struct
import tempfile
import threading
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hostile_files import FILES, npy_bytes, png_header
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from neural_kmeans.app.cli import main
from neural_kmeans.io import download
from neural_kmeans.io.datasets import DatasetNotFoundError, load_dataset

LOADER_ERRORS = (ValueError, TypeError, OSError)


@pytest.fixture(autouse=True)
def _no_system_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "SYSTEM_DATA_DIRS", {})


def _error_line(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """Run the command line, check it exits 2 with one ``error:`` line, return the line."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# --------------------------------------------------------------------------- .npz / .npy


def test_regression_truncated_npz_names_the_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "full.npz", x=np.ones((100, 4)), y=np.arange(100))
    path = tmp_path / "cut.npz"
    path.write_bytes((tmp_path / "full.npz").read_bytes()[:700])
    with pytest.raises(
        ValueError, match=r"cannot read '.*cut\.npz' as a \.npz archive .* np\.savez"
    ):
        load_dataset(path)


def test_regression_npz_member_cut_short_names_the_file(tmp_path: Path) -> None:
    # The archive is whole but its member holds fewer values than its header declares.
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", npy_bytes((100, 4), values=bytes(80)))
    with pytest.raises(ValueError, match=r"short\.npz' \(array 'x'\) is truncated or damaged"):
        load_dataset(path)


def test_regression_npz_renamed_npy_says_rename(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x=np.ones((3, 2)))
    os.rename(tmp_path / "a.npz", tmp_path / "a.npy")
    with pytest.raises(ValueError, match=r"a\.npy' is a \.npz archive .* rename it to a\.npz"):
        load_dataset(tmp_path / "a.npy")


def test_regression_npy_renamed_npz_says_rename(tmp_path: Path) -> None:
    np.save(tmp_path / "b.npy", np.ones((3, 2)))
    os.rename(tmp_path / "b.npy", tmp_path / "b.npz")
    with pytest.raises(ValueError, match=r"b\.npz' is a \.npy array, .* rename it to b\.npy"):
        load_dataset(tmp_path / "b.npz")


@pytest.mark.parametrize("mmap_mode", ["r", None])
def test_regression_npy_header_declaring_a_huge_shape_is_refused(
    tmp_path: Path, mmap_mode: str | None
) -> None:
    path = tmp_path / "huge.npy"
    path.write_bytes(npy_bytes((10**7, 10**6), values=bytes(64)))
    with pytest.raises(ValueError, match=r"huge\.npy' is truncated .* \(80,000,000,000,000 bytes"):
        load_dataset(path, mmap_mode=mmap_mode)


def test_regression_npz_member_declaring_a_huge_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", npy_bytes((10**7, 10**6), values=bytes(64)))
    with pytest.raises(ValueError, match=r"huge\.npz' \(array 'x'\) is truncated"):
        load_dataset(path)


def test_regression_arrays_over_the_memory_limit_are_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURAL_KMEANS_MAX_BYTES", "1e6")
    x = np.zeros((1000, 250))  # 2 MB of zeros; 2 kB once deflated
    np.save(tmp_path / "x.npy", x)
    np.savez_compressed(tmp_path / "bomb.npz", x=x)
    tracemalloc.start()
    for path, fix in [(tmp_path / "bomb.npz", "save it with np.save"), (tmp_path / "x.npy", "")]:
        with pytest.raises(ValueError, match="NEURAL_KMEANS_MAX_BYTES") as info:
            load_dataset(path, mmap_mode=None)
        assert "(2,000,000 bytes), more than the limit" in str(info.value) and fix in str(
            info.value
        )
    assert tracemalloc.get_traced_memory()[1] < 500_000
    tracemalloc.stop()
    assert load_dataset(tmp_path / "x.npy").data.shape == x.shape  # memory-mapped: no limit
    monkeypatch.setenv("NEURAL_KMEANS_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match=r"NEURAL_KMEANS_MAX_BYTES must be a positive number"):
        load_dataset(tmp_path / "bomb.npz")


# --------------------------------------------------------------------------- .csv


def test_regression_csv_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(b"1,2\n3,\xff\n")
    with pytest.raises(ValueError, match=r"latin\.csv' is not UTF-8 text .*0xff.*save it as UTF-8"):
        load_dataset(path)


def test_regression_csv_field_over_the_csv_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("1,2\n3," + "4" * 200_000 + "\n")
    with pytest.raises(ValueError, match=r"long\.csv' is not a CSV file of numbers: line 2: field"):
        load_dataset(path)


def test_regression_one_long_csv_field_does_not_widen_every_cell(tmp_path: Path) -> None:
    # A fixed-width string array would take rows x columns x the longest field.
    path = tmp_path / "wide.csv"
    path.write_text("1,a\n" * 2000 + "2," + "b" * 100_000 + "\n")
    tracemalloc.start()
    ds = load_dataset(path, label_column=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ds.data.shape == (2001, 1) and ds.target.tolist() == [0] * 2000 + [1]
    assert peak < 16 << 20  # the fixed-width array alone took 1.6 GB


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_regression_values_beyond_float32_are_refused(tmp_path: Path, suffix: str) -> None:
    x = np.ones((5, 3))
    x[3, 1] = -1e200
    path = tmp_path / f"big{suffix}"
    if suffix == ".csv":
        np.savetxt(path, x, delimiter=",")
    else:
        np.save(path, x)
    with pytest.raises(ValueError, match=r"beyond float32's range .*1e\+200 in sample 3; scale"):
        load_dataset(path)
    x[3, 1] = np.inf  # infinity is left to the estimator's check, which names it
    np.save(tmp_path / "inf.npy", x)
    assert load_dataset(tmp_path / "inf.npy").data.shape == (5, 3)


# --------------------------------------------------------------------------- images


def _save_grey(path: Path, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_regression_truncated_image_names_the_file(tmp_path: Path) -> None:
    _save_grey(tmp_path / "imgs" / "a" / "1.png", 64)
    _save_grey(tmp_path / "imgs" / "b" / "2.png", 64)
    broken = tmp_path / "imgs" / "b" / "2.png"
    broken.write_bytes(broken.read_bytes()[:2000])  # of about 4 kB
    with pytest.raises(ValueError, match=r"cannot decode image '.*2\.png': .*truncated.*remove it"):
        load_dataset(tmp_path / "imgs")


def _huge_jpeg(path: Path) -> None:
    """A small JPEG whose start-of-frame header is patched to declare 65000x65000."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_regression_image_header_declaring_a_huge_size_is_refused(tmp_path: Path, kind) -> None:
    path = tmp_path / "imgs" / f"big.{kind}"
    path.parent.mkdir()
    if kind == "png":
        path.write_bytes(png_header(100_000, 100_000))
    else:
        _huge_jpeg(path)
    with pytest.raises(ValueError, match=r"image '.*big\.\w+' is too large .* smaller images"):
        load_dataset(tmp_path / "imgs")


def test_regression_images_over_the_memory_limit_are_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURAL_KMEANS_MAX_BYTES", "1000000")
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png_header(4000, 4000))
    with pytest.raises(ValueError, match=r"1 image\(s\) of 4000x4000 pixels .* use smaller"):
        load_dataset(tmp_path / "imgs")


# --------------------------------------------------------------------------- other files


def test_regression_gzip_bomb_in_the_data_folder_is_reported_as_damaged(
    shared_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    shutil.copy(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz", folder)
    bomb = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing
    zeros = bytes(1 << 24)
    chunks = [bomb.compress(zeros) for _ in range(16)]  # 256 MiB for a 10 kB file
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"".join([*chunks, bomb.flush()]))
    tracemalloc.start()
    with pytest.warns(UserWarning, match="failed verification and is not used: damaged"):
        with pytest.raises(DatasetNotFoundError) as info:
            load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "t10k-labels-idx1-ubyte.gz (data_dir): rejected, damaged" in str(info.value)
    assert peak < 64 << 20  # the images (7.8 MB, decoded twice) but not the bomb


def _load_in_thread(path: Path) -> BaseException | None:
    """load_dataset(path) in a thread that a blocking open() cannot hang the tests with."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            load_dataset(path)
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert outcome, "load_dataset blocked on a non-regular file"
    return outcome[0]


@pytest.mark.parametrize("name", ["x.csv", "x.npy", "x.npz"])
def test_regression_fifo_named_csv_is_refused_without_blocking(tmp_path: Path, name) -> None:
    os.mkfifo(tmp_path / name)
    error = _load_in_thread(tmp_path / name)
    assert isinstance(error, ValueError)
    assert f"{name}' is not a regular file (a FIFO, a device or a socket)" in str(error)
    (tmp_path / "dev.npy").symlink_to(os.devnull)
    assert "not a regular file" in str(_load_in_thread(tmp_path / "dev.npy"))


@pytest.mark.parametrize("name", ["", "  "])
def test_regression_empty_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="the data set name is empty: give one of digits"):
        load_dataset(name)


# --------------------------------------------------------------------------- command line


def _cli_cases(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Hostile files for the command line: name -> (path, expected text of the error)."""
    np.savez(tmp_path / "a.npz", x=np.ones((3, 2)))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "a.npz").read_bytes()[:100])
    shutil.copy(tmp_path / "a.npz", tmp_path / "zip.npy")
    (tmp_path / "huge.npy").write_bytes(npy_bytes((10**7, 10**6), values=bytes(8)))
    (tmp_path / "latin.csv").write_bytes(b"1,2\n\xe9,4\n")
    (tmp_path / "long.csv").write_text("9" * 200_000 + "\n")
    (tmp_path / "big.csv").write_text("1,2\n1e200,3\n")
    os.mkfifo(tmp_path / "fifo.csv")
    return {
        "truncated npz": ("cut.npz", "as a .npz archive"),
        "npz named npy": ("zip.npy", "rename it to zip.npz"),
        "huge npy": ("huge.npy", "is truncated or damaged"),
        "not UTF-8": ("latin.csv", "is not UTF-8 text"),
        "long field": ("long.csv", "field larger than field limit"),
        "beyond float32": ("big.csv", "beyond float32's range"),
        "fifo": ("fifo.csv", "is not a regular file"),
    }


def test_regression_hostile_files_on_the_command_line_give_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path, expected in _cli_cases(tmp_path).values():
        err = _error_line(capsys, "run", "--dataset", tmp_path / path, "--out", tmp_path / "o")
        assert f"{path}'" in err and expected in err, err
    err = _error_line(capsys, "run", "--dataset", "", "--out", tmp_path / "o")
    assert "the data set name is empty" in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- any bytes


@pytest.mark.filterwarnings("ignore:Reading `.npy`", "ignore::PIL.Image.DecompressionBombWarning")
def test_any_bytes_give_samples_or_a_loader_error_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURAL_KMEANS_MAX_BYTES", "1000000")
    _save_grey(tmp_path / "warm" / "a.png")
    load_dataset(tmp_path / "warm")  # PIL's plugins are imported once, outside the measure

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(FILES, st.sampled_from(["r", None]))
    def check(file: tuple[str, bytes], mmap_mode: str | None) -> None:
        suffix, content = file
        with tempfile.TemporaryDirectory(dir=tmp_path) as folder:
            path = Path(folder) / f"f{suffix}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(content)
            target = path.parent if suffix.startswith("/") else path
            tracemalloc.start()
            try:
                load_dataset(target, mmap_mode=mmap_mode)
            except LOADER_ERRORS as exc:
                assert str(target) in str(exc) and "\n" not in str(exc), str(exc)
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            assert peak < 4_000_000

    check()
