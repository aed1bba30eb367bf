"""Regression tests of a hostile-input hunt: each failure it found, named after it.

The promise: every error a user can cause is one ``error:`` line and exit status 2 (130
when interrupted), no traceback; nothing is overwritten or lost; a refused or failed run
leaves nothing behind. Cases that concern the command line run it for real (a
subprocess) where the process matters (signals, file-size limits, two runs at once), and
through ``main()`` otherwise; the Python API's cases raise ``ValueError``/``TypeError``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_files import FILES

from neural_kmeans import NeuralKMeans
from neural_kmeans.app.cli import main
from neural_kmeans.io.container import read_container, write_container
from neural_kmeans.io.model_file import MODEL_FORMAT, MODEL_FORMAT_VERSION, ModelFileError

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
QUICK = ["--method", "mlp", "--max-iter", "2", "--no-kmeans", "--quiet"]


def _cli(*argv: object, limit_file_size: int | None = None, **popen: object):
    """Run ``python -m neural_kmeans`` (optionally under a file-size limit: a disk that
    fills up after ``limit_file_size`` bytes of any one file)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    return subprocess.run(
        [sys.executable, "-m", "neural_kmeans", *map(str, argv)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=None if limit_file_size is None else limit,
        **popen,
    )


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def _main_error(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """``main(argv)``: exit status 2 and one error line, returned."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert status == 2, err
    return _one_error_line(err)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model fitted on digits by the command line."""
    folder = tmp_path_factory.mktemp("model")
    model = folder / "digits.nkm"
    assert main(["run", *QUICK, "--out", str(folder / "run"), "--save-model", str(model)]) == 0
    return model


def _forge(model: Path, target: Path, change) -> Path:
    """Rewrite ``model``'s header through ``change(header)`` with a matching digest, as
    anyone who can write the file can: the digest detects damage, not forgery."""
    header, tensors = read_container(model, MODEL_FORMAT, MODEL_FORMAT_VERSION, ModelFileError)
    change(header)
    write_container(target, MODEL_FORMAT, MODEL_FORMAT_VERSION, header, tensors)
    return target


# ------------------------------------------------------------------------- data loss
def test_regression_predict_labels_get_no_implicit_suffix(tmp_path, capsys, digits_model):
    existing = tmp_path / "labels.npy"
    existing.write_bytes(b"keep me")
    base = ["predict", "--model", digits_model, "--dataset", "digits", "--labels"]
    assert "must end in .npy or .csv" in _main_error(capsys, *base, tmp_path / "labels")
    assert "--overwrite" in _main_error(capsys, *base, existing)
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.npy"]


def test_regression_two_runs_on_one_new_out_never_mix(tmp_path):
    out = tmp_path / "shared"
    argv = [sys.executable, "-m", "neural_kmeans", "run", *QUICK, "--out", str(out)]
    runs = [
        subprocess.Popen([*argv, "--seed", str(seed)], env=ENV, stderr=subprocess.PIPE, text=True)
        for seed in (0, 1)
    ]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    assert sorted(status for status, _ in results) == [0, 2], results
    (seed,) = [seed for seed, (status, _) in zip((0, 1), results, strict=True) if status == 0]
    refused = next(err for status, err in results if status == 2)
    assert "another run" in _one_error_line(refused) or "not empty" in refused
    written = json.loads((out / "results.json").read_text())
    assert written["config"]["seed"] == seed  # one run's outputs, whole
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no lock, no staging


def test_regression_save_model_cannot_replace_the_runs_labels(tmp_path, capsys):
    out = tmp_path / "run"
    for exists in (False, True):
        err = _main_error(capsys, "run", *QUICK, "--out", out, "--save-model", out / "labels.npy")
        assert "--save-model" in err and ".nkm" in err
        assert list(out.iterdir()) == [] if exists else not out.exists()
        out.mkdir(exist_ok=True)
    assert main(["run", *QUICK, "--out", str(out), "--save-model", str(out / "model.nkm")]) == 0
    assert (out / "model.nkm").is_file() and (out / "labels.npy").is_file()


# ------------------------------------------------------- user errors that were exit 1
def test_regression_predict_on_data_of_another_shape(tmp_path, capsys, digits_model):
    err = _main_error(
        capsys, "predict", "--model", digits_model, "--dataset", "moons", "--labels",
        tmp_path / "x.npy",
    )  # fmt: skip
    assert "--dataset 'moons' does not fit the model" in err and "features" in err
    assert not (tmp_path / "x.npy").exists()


def test_regression_unwritable_out_is_refused_before_the_fit(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = _main_error(capsys, "run", *QUICK, "--out", blocker / "run")
    assert "is a file, so no folder can be made there" in err
    err = _main_error(
        capsys, "predict", "--model", "m.nkm", "--dataset", "digits", "--labels",
        blocker / "x.npy",
    )  # fmt: skip
    assert "is a file" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_regression_out_without_write_permission_is_refused_before_the_fit(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert "permission denied" in _main_error(capsys, "run", *QUICK, "--out", locked / "run")


def test_regression_disk_full_while_writing_outputs_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    result = _cli("run", *QUICK, "--out", out, limit_file_size=20_000)
    assert result.returncode == 2, result.stderr
    line = _one_error_line(result.stderr)
    assert "File too large" in line and "free some space" in line
    assert ".partial-" not in line  # the file's name, not its staging place
    assert not out.exists()  # the folder this run made is gone, with its partial files


def test_regression_disk_full_while_predicting_names_the_labels_file(tmp_path, digits_model):
    labels = tmp_path / "labels.npy"
    result = _cli(
        "predict", "--model", digits_model, "--dataset", "digits", "--labels", labels,
        limit_file_size=1_000,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert str(labels) in _one_error_line(result.stderr)
    assert list(tmp_path.iterdir()) == []  # no labels, no temporary file


def test_regression_save_errors_name_the_file_not_its_temporary(tmp_path):
    model = NeuralKMeans(2, network="mlp", max_iter=1).fit(np.random.default_rng(0).random((20, 2)))
    target = tmp_path / "missing-folder" / "model.nkm"
    with pytest.raises(FileNotFoundError) as caught:
        model.save(target)
    assert caught.value.filename == str(target)


def test_regression_out_name_longer_than_file_systems_allow(tmp_path, capsys):
    out = tmp_path / ("a" * 300)
    assert "more than file systems allow" in _main_error(capsys, "run", *QUICK, "--out", out)
    model = tmp_path / ("m" * 300 + ".nkm")
    assert "more than file systems allow" in _main_error(
        capsys, "run", *QUICK, "--out", tmp_path / "r", "--save-model", model
    )
    assert list(tmp_path.iterdir()) == []


def test_regression_model_saved_on_cuda_says_device_cpu(tmp_path, capsys, digits_model):
    def on_cuda(header: dict) -> None:
        header["params"]["device"] = "cuda"
        header["network"]["device"] = "cuda"

    forged = _forge(digits_model, tmp_path / "cuda.nkm", on_cuda)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the model loads")
    err = _main_error(
        capsys, "predict", "--model", forged, "--dataset", "digits", "--labels",
        tmp_path / "x.npy",
    )  # fmt: skip
    assert "pass --device cpu" in err and "NeuralKMeans.load" not in err


def test_regression_deeply_nested_json_in_a_model_header(tmp_path, capsys, digits_model):
    def nest(header: dict) -> None:
        header["params"] = "PLACEHOLDER"

    forged = _forge(digits_model, tmp_path / "deep.nkm", nest)
    raw = forged.read_bytes()
    deep = "[" * 100_000 + "]" * 100_000
    size = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8 : 8 + size])
    meta["__metadata__"]["neural_kmeans"] = meta["__metadata__"]["neural_kmeans"].replace(
        '"PLACEHOLDER"', deep
    )
    text = json.dumps(meta).encode()
    text += b" " * (-len(text) % 8)
    forged.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])
    with pytest.raises(ModelFileError, match="header"):
        NeuralKMeans.load(forged)
    err = _main_error(
        capsys, "predict", "--model", forged, "--dataset", "digits", "--labels",
        tmp_path / "x.npy",
    )  # fmt: skip
    assert str(forged) in err


def test_regression_forged_n_clusters_is_refused_before_allocation(tmp_path, digits_model):
    def huge(header: dict) -> None:  # 51 GB of weights, asked for by a 6 KB change
        header["params"]["n_clusters"] = 100_000_000
        header["network"]["n_clusters"] = 100_000_000

    forged = _forge(digits_model, tmp_path / "huge.nkm", huge)
    with pytest.raises(ModelFileError, match="does not describe the weights it holds"):
        NeuralKMeans.load(forged)


def test_regression_weights_that_another_version_wrote_name_that_version(tmp_path, digits_model):
    """A file whose weights do not fit the network its header describes was always called
    damaged; written by another version (0.2.0's learned network for images of 64 px and
    more took no averaging layer), it now says which version wrote it."""
    import neural_kmeans

    def other_k(header: dict) -> None:
        header["params"]["n_clusters"] = 11
        header["network"]["n_clusters"] = 11

    def older_and_other_k(header: dict) -> None:
        other_k(header)
        header["package_version"] = "0.0.1"

    def unnamed_and_other_k(header: dict) -> None:
        other_k(header)
        header["package_version"] = None  # (write_container fills in a missing one)

    same = _forge(digits_model, tmp_path / "same.nkm", other_k)
    with pytest.raises(ModelFileError, match="the file was changed or damaged"):
        NeuralKMeans.load(same)
    unnamed = _forge(digits_model, tmp_path / "unnamed.nkm", unnamed_and_other_k)
    with pytest.raises(ModelFileError, match="the file was changed or damaged"):
        NeuralKMeans.load(unnamed)
    older = _forge(digits_model, tmp_path / "older.nkm", older_and_other_k)
    with pytest.raises(ModelFileError) as info:
        NeuralKMeans.load(older)
    message = str(info.value)
    assert "written by neural-kmeans 0.0.1, whose network for this input differs" in message
    assert f"({neural_kmeans.__version__}): fit it again" in message and "damaged" not in message


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--learning-rate", "1e300", "up to 3.4e38"),
        ("--threads", "1000000", "expected 0 (automatic) to"),
        ("--threads", "1e20", "expected 0 (automatic) to"),
        ("--resolution", "1000000", "expected 10 to 1000"),
        ("--fps", "1e-300", "expected 0.1 to 60"),
    ],
)
def test_regression_unbounded_parameters(capsys, option, value, expected):
    command = "animate" if option in ("--resolution", "--fps") else "run"
    err = _main_error(capsys, command, option, value)
    assert option in err and expected in err


def test_regression_fifo_named_like_a_model_is_refused_without_blocking(tmp_path, capsys):
    os.mkfifo(tmp_path / "model.nkm")
    err = _main_error(
        capsys, "predict", "--model", tmp_path / "model.nkm", "--dataset", "digits",
        "--labels", tmp_path / "x.npy",
    )  # fmt: skip
    assert "not a regular file" in err


def test_regression_predict_split_bogus(capsys):
    assert "invalid choice: 'bogus'" in _main_error(
        capsys, "predict", "--model", "m.nkm", "--dataset", "digits", "--split", "bogus"
    )


def test_regression_values_beyond_float32_fail_before_kmeans_plusplus():
    X = np.random.default_rng(0).random((50, 3))
    X[7, 1] = 1e200
    with pytest.raises(ValueError, match="overflow float32") as caught:
        NeuralKMeans(3, network="mlp", max_iter=1).fit(X)
    assert "infinity" not in str(caught.value)  # 1e200 is finite: not called infinity
    with pytest.raises(ValueError, match="overflow float64"):
        NeuralKMeans(3, network="nearest-centroid").fit(X)
    model = NeuralKMeans(3, network="mlp", max_iter=1).fit(np.delete(X, 7, axis=0))
    with pytest.raises(ValueError, match="overflow float32"):
        model.predict(X)


def test_regression_one_by_one_images_use_the_mlp(tmp_path, capsys):
    images = np.random.default_rng(0).random((40, 1, 1)).astype(np.float32)
    assert NeuralKMeans(2, max_iter=1).fit(images).network_ is not None
    np.save(tmp_path / "tiny.npy", images)
    argv = ["run", "--dataset", tmp_path / "tiny.npy", "--clusters", "2", "--out", tmp_path / "o"]
    assert main([str(a) for a in [*argv, "--max-iter", "1", "--no-kmeans", "--quiet"]]) == 0
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["config"]["methods"] == ["mlp"]


def test_regression_meta_tensor_is_named():
    with pytest.raises(ValueError, match="'meta' device"):
        NeuralKMeans(2, max_iter=1).fit(torch.zeros(10, 3, device="meta"))


def test_regression_network_factory_with_the_wrong_output_width():
    X = np.random.default_rng(0).random((30, 3))
    with pytest.raises(ValueError, match=r"K=3 outputs .* it gave \(2, 5\)"):
        NeuralKMeans(3, network=lambda shape, k: torch.nn.Linear(3, k + 2), max_iter=1).fit(X)
    with pytest.raises(ValueError, match="cannot take samples of shape"):
        NeuralKMeans(3, network=lambda shape, k: torch.nn.Linear(4, k), max_iter=1).fit(X)


# ----------------------------------------------------------------------- Ctrl-C
@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0, 6.0])
def test_regression_ctrl_c_at_any_moment_is_one_line_and_130(tmp_path, delay):
    """SIGINT while the libraries load (the first seconds), the data loads, or the fit
    runs: status 130 and ``error: interrupted``, never a traceback, no output left (the
    interpreter's own start, some 30 ms, is Python's: see below)."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "neural_kmeans", "run", "--out", str(out), "--method", "mlp"]
    process = subprocess.Popen(
        [*argv, "--max-iter", "300", "--steps-per-iter", "50", "--no-kmeans", "--quiet"],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    if process.returncode == 0:
        pytest.skip(f"the run finished within {delay} s")
    assert not out.exists()
    # killed by SIGINT is what a shell reports as 130 too. It happens when the signal
    # comes while the interpreter starts (a loaded machine can take over 0.5 s), before
    # any code of this package can catch it (Python's own ending, possibly with its
    # traceback of the start-up); and, a few times in a hundred when it comes while
    # modules import, after our message and a status of 130: the interpreter then ends
    # by the signal all the same
    assert process.returncode in (130, -signal.SIGINT), err
    if process.returncode == -signal.SIGINT and "error: interrupted" not in err:
        assert "neural_kmeans/app" not in err, err
        return
    assert _one_error_line(err).startswith("error: interrupted")


# ---------------------------------------------------------------------- cosmetic
def test_regression_warnings_are_quiet_with_quiet_and_never_beside_an_error(tmp_path):
    same = tmp_path / "same.csv"
    same.write_text("1,2\n" * 6)  # 6 equal samples, 3 clusters: a ConvergenceWarning
    argv = ["run", "--dataset", same, "--clusters", "3", "--method", "nearest-centroid"]
    loud = _cli(*argv, "--no-kmeans", "--out", tmp_path / "a")
    assert loud.returncode == 0, loud.stderr
    assert "warning: Number of distinct clusters (1)" in loud.stderr
    assert "Traceback" not in loud.stderr and "ConvergenceWarning" not in loud.stderr
    quiet = _cli(*argv, "--no-kmeans", "--quiet", "--out", tmp_path / "b")
    assert quiet.returncode == 0 and quiet.stderr == ""
    failed = _cli(*argv, "--learning-rate", "-1", "--out", tmp_path / "c")
    assert failed.returncode == 2 and _one_error_line(failed.stderr)


def test_regression_refused_run_leaves_no_empty_out(tmp_path, capsys):
    out = tmp_path / "run"
    _main_error(capsys, "run", *QUICK, "--clusters", "100000", "--out", out)
    assert not out.exists()


def test_regression_messages_use_the_command_lines_words(tmp_path, capsys):
    (tmp_path / "ck").mkdir()
    err = _main_error(capsys, "run", *QUICK, "--resume", tmp_path / "ck", "--out", tmp_path / "o")
    assert "--resume" in err and "resume=True" not in err and "checkpoint_dir" not in err


def test_regression_orphan_checkpoint_temporaries_are_removed(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    orphan = tmp_path / f".checkpoint.safetensors.{gone.stdout.strip()}.tmp"
    orphan.write_bytes(b"half a checkpoint")
    X = np.random.default_rng(0).random((30, 2))
    NeuralKMeans(2, network="mlp", max_iter=1, checkpoint_dir=tmp_path).fit(X)
    assert not orphan.exists()
    assert (tmp_path / "checkpoint.safetensors").is_file()


def test_regression_stale_lock_of_a_killed_run_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    (out / ".neural-kmeans.lock").write_text(gone.stdout.strip())
    assert main(["run", *QUICK, "--out", str(out)]) == 0
    assert (out / "results.json").is_file() and not (out / ".neural-kmeans.lock").exists()


# ---------------------------------------------------------------- any input at all
_OPTION_VALUES = ["0", "1", "-1", "2", "1e300", "nan", "inf", "", "x", "1e-300", "10000000000"]


def test_any_file_and_options_give_status_0_or_2_and_one_line(tmp_path, monkeypatch, capsys):
    """Random bytes, .npy/.npz/CSV/PNG headers and random option values through
    ``main()``: status 0 or 2, one ``error:`` line when 2, no traceback, nothing left in
    ``--out`` after a failure, memory bounded by ``NEURAL_KMEANS_MAX_BYTES``."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    monkeypatch.setenv("NEURAL_KMEANS_MAX_BYTES", "2000000")
    options = st.lists(
        st.tuples(
            st.sampled_from(["--clusters", "--max-iter", "--learning-rate", "--batch-size",
                             "--steps-per-iter", "--seed", "--tol", "--threads"]),
            st.sampled_from(_OPTION_VALUES) | st.text(max_size=8),
        ),
        max_size=3,
    )  # fmt: skip
    counter = iter(range(10**6))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(FILES, options)
    def check(file: tuple[str, bytes], chosen: list[tuple[str, str]]) -> None:
        case = tmp_path / f"case{next(counter)}"
        suffix, content = file
        path = case / f"data{suffix}"
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        dataset = path.parent if suffix.startswith("/") else path
        out = case / "out"
        argv = ["run", "--dataset", str(dataset), "--out", str(out), "--method", "mlp"]
        argv += ["--max-iter", "1", "--no-kmeans", "--quiet"]
        for option, value in chosen:
            argv += [option, value] if not value.startswith("-") else [f"{option}={value}"]
        status = main(argv)
        captured = capsys.readouterr()
        assert status in (0, 2), (argv, captured.err)
        assert "Traceback" not in captured.err
        if status == 2:
            _one_error_line(captured.err)
            assert not out.exists(), list(out.iterdir())

    check()
