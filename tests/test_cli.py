"""The command line, end to end: every subcommand on small data, its files and its errors."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neural_kmeans.app import data as app_data
from neural_kmeans.app import experiments as ex
from neural_kmeans.app import report
from neural_kmeans.app.cli import main

METRICS = ("acc", "nmi", "ari", "rand", "purity")
RUN_KEYS = {"train", "test", "seconds", "n_iter", "inertia"}


# --------------------------------------------------------------------------- helpers


def check_png(path: Path) -> None:
    assert path.is_file(), f"missing {path}"
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()


def gif_frames(path: Path) -> int:
    assert path.is_file(), f"missing {path}"
    with Image.open(path) as image:
        assert image.format == "GIF"
        return image.n_frames


def check_metrics(metrics: dict | None) -> None:
    assert metrics is not None
    assert set(metrics) == set(METRICS)
    for name in ("acc", "nmi", "rand", "purity"):
        assert 0.0 <= metrics[name] <= 1.0, (name, metrics[name])
    assert -1.0 <= metrics["ari"] <= 1.0


def check_run_record(run: dict, *, labels: bool, test: bool) -> None:
    assert set(run) >= RUN_KEYS
    assert isinstance(run["n_iter"], int) and run["n_iter"] >= 1
    assert isinstance(run["seconds"], float) and run["seconds"] >= 0
    assert isinstance(run["inertia"], float) and run["inertia"] >= 0
    if labels:
        check_metrics(run["train"])
    else:
        assert run["train"] is None
    if test and labels:
        check_metrics(run["test"])
    else:
        assert run["test"] is None


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --------------------------------------------------------------------------- run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str, str]:
    """One small ``run`` on digits (3 iterations), shared by the checks of its outputs."""
    out = tmp_path_factory.mktemp("cli") / "digits"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["run", "--max-iter", "3", "--out", str(out)])
    return out, status, stdout.getvalue(), stderr.getvalue()


def test_run_writes_the_listed_files(digits_run: tuple[Path, int, str, str]) -> None:
    out, status, stdout, _ = digits_run
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    n_iter = results["methods"][results["config"]["methods"][0]]["n_iter"]
    frames = sorted((out / "centroids").glob("iter_*.png"))
    assert [f.name for f in frames] == [f"iter_{i:03d}.png" for i in range(n_iter + 1)]
    for frame in frames:
        check_png(frame)
    assert gif_frames(out / "centroids.gif") == n_iter + 1
    check_png(out / "confusion.png")
    check_png(out / "history.png")
    assert f"outputs written to {out}" in stdout


def test_run_on_a_keras_layout_npz_fits_train_and_scores_test(capsys, tmp_path) -> None:
    """An archive as keras.datasets ships MNIST (x_train, y_train, x_test, y_test): the
    fit is on x_train, the scores on both, as for MNIST."""
    from neural_kmeans.io.datasets import load_dataset

    X, y = load_dataset("digits")
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=X[:1200], y_train=y[:1200], x_test=X[1200:], y_test=y[1200:])
    out = tmp_path / "k"
    status, stdout, _ = run_cli(capsys, "run", "--dataset", path, "--method", "mlp",
                                "--max-iter", "2", "--quiet", "--out", out)  # fmt: skip
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert results["split"] == {"fit": "train", "test": "test"}
    for run in results["methods"].values():
        check_run_record(run, labels=True, test=True)
    labels = np.load(out / "labels.npy", allow_pickle=False)
    assert len(labels) == 1200 and "test" in stdout


def test_run_results_follow_the_schema(digits_run: tuple[Path, int, str, str]) -> None:
    out, *_ = digits_run
    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"dataset", "n_clusters", "split", "methods", "config", "versions"}
    assert results["dataset"] == "digits"
    assert results["n_clusters"] == 10
    assert results["split"] == {"fit": "all", "test": None}
    assert set(results["methods"]) == {"cnn", "kmeans"}  # auto: the CNN for images
    for run in results["methods"].values():
        check_run_record(run, labels=True, test=False)
    assert results["methods"]["cnn"]["n_iter"] <= 3
    assert results["config"]["methods"] == ["cnn", "kmeans"]
    assert results["config"]["max_iter"] == {"cnn": 3}
    assert results["config"]["kmeans"] == {
        "init": "k-means++",
        "n_init": "auto",
        "max_iter": 3,
        "tol": 1e-4,
    }
    assert results["config"]["learning_rate"] is None
    assert results["config"]["inertia_units"].startswith("samples scaled to [0, 1]")
    versions = results["versions"]
    assert {"neural_kmeans", "torch", "numpy", "scikit-learn", "python"} <= set(versions)


def test_run_logs_one_line_per_iteration_when_not_a_terminal(
    digits_run: tuple[Path, int, str, str],
) -> None:
    *_, stderr = digits_run
    lines = [line for line in stderr.splitlines() if "iteration" in line and "loss" in line]
    assert len(lines) >= 1
    assert re.search(r"iteration 1/3 +loss [\d.]+ +changed [\d.]+ +inertia", lines[0])
    assert "Traceback" not in stderr


def test_run_quiet_prints_no_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run_cli(
        capsys,
        "run",
        "--dataset",
        "blobs",
        "--method",
        "linear",
        "--max-iter",
        "2",
        "--quiet",
        "--no-kmeans",
        "--out",
        tmp_path / "q",
    )
    assert status == 0
    assert err == ""
    results = json.loads((tmp_path / "q" / "results.json").read_text())
    assert set(results["methods"]) == {"linear"}
    assert results["n_clusters"] == 3
    check_png(tmp_path / "q" / "clusters.png")  # 2-D rows: a scatter instead of centroid images
    assert not (tmp_path / "q" / "centroids").exists()
    assert "linear" in out


def test_run_on_an_unlabelled_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "points.npy"
    np.save(path, rng.normal(size=(120, 5)).astype(np.float32))
    status, _, err = run_cli(capsys, "run", "--dataset", path, "--out", tmp_path / "a")
    assert status == 2
    assert err.startswith("error: ") and "--clusters" in err
    status, _, _ = run_cli(
        capsys,
        "run",
        "--dataset",
        path,
        "--clusters",
        "3",
        "--max-iter",
        "2",
        "--out",
        tmp_path / "b",
    )
    assert status == 0
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert results["dataset"] == str(path)
    for run in results["methods"].values():
        check_run_record(run, labels=False, test=False)
    check_png(tmp_path / "b" / "history.png")
    assert not (tmp_path / "b" / "confusion.png").exists()


def test_run_never_overwrites_a_non_empty_out_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["run", "--dataset", "moons", "--max-iter", "1", "--out", out, "--quiet"]
    status, _, err = run_cli(capsys, *argv)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    status, _, _ = run_cli(capsys, *argv, "--overwrite")
    assert status == 0
    assert (out / "results.json").is_file() and (out / "keep.txt").read_text() == "mine"


def test_run_with_mnist_scores_the_test_split(
    shared_data_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    # a small MNIST stand-in with the real split logic: monkeypatch the loader's subset
    real = app_data.load_data

    def small(*args, **kwargs):
        kwargs.update(train_subset=600, test_subset=200)
        return real(*args, **kwargs)

    monkeypatch.setattr("neural_kmeans.app.commands.load_data", small)
    status, _, _ = run_cli(
        capsys,
        "run",
        "--dataset",
        "mnist",
        "--method",
        "linear",
        "--max-iter",
        "2",
        "--quiet",
        "--out",
        tmp_path / "m",
    )
    assert status == 0
    results = json.loads((tmp_path / "m" / "results.json").read_text())
    assert results["split"] == {"fit": "train", "test": "test"}
    for run in results["methods"].values():
        check_run_record(run, labels=True, test=True)
    check_png(tmp_path / "m" / "confusion.png")
    assert gif_frames(tmp_path / "m" / "centroids.gif") == (
        results["methods"][results["config"]["methods"][0]]["n_iter"] + 1
    )


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--dataset", "no-such-data"],
        ["run", "--dataset", "/no/such/file.npy"],
        ["run", "--clusters", "0"],
        ["run", "--clusters", "100000"],
        ["run", "--max-iter", "many"],
        ["run", "--learning-rate", "-1"],
        ["run", "--tol", "-2"],
        ["run", "--method", "resnet"],
        ["run", "--dataset", "moons", "--method", "cnn"],
        ["run", "--device", "tpu9"],
        ["run", "--no-such-option"],
        ["compare", "--methods", "spectral"],
        ["compare", "--dataset", "moons", "--methods", "cnn"],
        ["sweep", "--clusters", "2", "100000"],
        ["reproduce", "--dataset", "digits"],
        ["animate", "--dataset", "digits"],
        ["animate", "--animation", "movie.avi"],
        ["bogus"],
        [],
    ],
)
def test_user_errors_exit_2_with_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if argv and argv[0] in ("run", "compare", "sweep", "reproduce"):
        argv = [*argv, "--out", str(tmp_path / "out")]
    status, _, err = run_cli(capsys, *argv)
    assert status == 2
    assert err.startswith("error: ")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written for a bad command


def test_unreadable_file_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip file")
    status, _, err = run_cli(capsys, "run", "--dataset", path, "--out", tmp_path / "o")
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_unexpected_errors_exit_1_and_log_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ex, "fit_neural", broken)
    status, _, err = run_cli(
        capsys, "run", "--dataset", "moons", "--quiet", "--out", tmp_path / "x"
    )
    assert status == 1
    assert err.count("\n") == 1 and err.startswith("error: unexpected RuntimeError: boom")
    log = tmp_path / "x" / "error.log"
    assert str(log) in err
    assert "Traceback" in log.read_text()


@pytest.mark.parametrize("command", ["", "run", "compare", "sweep", "reproduce", "animate"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(capsys, *([command] if command else []), "--help")
    assert status == 0
    assert "usage: neural-kmeans" in out
    if command == "run":
        for option in (
            "--dataset",
            "--clusters",
            "--method",
            "--init",
            "--max-iter",
            "--steps-per-iter",
            "--learning-rate",
            "--tol",
            "--seed",
            "--device",
            "--data-dir",
            "--out",
            "--no-kmeans",
            "--quiet",
        ):
            assert option in out


# --------------------------------------------------------------------------- a real process


@pytest.mark.slow
def test_bare_run_in_a_subprocess(tmp_path: Path) -> None:
    """``python -m neural_kmeans run`` with no options: digits, a new folder under runs/."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "neural_kmeans", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    match = re.search(r"outputs written to (runs/digits-[\d-]+)/", done.stdout)
    assert match, done.stdout
    out = tmp_path / match.group(1)
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["max_iter"] == {"cnn": 20}
    n_iter = results["methods"][results["config"]["methods"][0]]["n_iter"]
    assert gif_frames(out / "centroids.gif") == n_iter + 1
    assert "Traceback" not in done.stderr


def test_subprocess_error_exit_status_without_matplotlib(tmp_path: Path) -> None:
    """A usage error in a real process: status 2, one line; the core never imports matplotlib."""
    code = (
        "import sys; import neural_kmeans.app.report; from neural_kmeans.app.cli import main; "
        "status = main(['run', '--clusters', 'zero']); "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'; sys.exit(status)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- compare, sweep


def test_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    status, stdout, _ = run_cli(
        capsys,
        "compare",
        "--seed",
        "0",
        "1",
        "--max-iter",
        "2",
        "--quiet",
        "--methods",
        "cnn",
        "linear",
        "kmeans",
        "--out",
        out,
    )
    assert status == 0
    document = json.loads((out / "compare.json").read_text())
    assert document["seeds"] == [0, 1]
    assert list(document["methods"]) == ["cnn", "linear", "kmeans"]
    for entry in document["methods"].values():
        assert [run["seed"] for run in entry["runs"]] == [0, 1]
        for run in entry["runs"]:
            check_run_record(run, labels=True, test=False)
        summary = entry["summary"]
        assert summary["test"] is None
        for metric in METRICS:
            values = [run["train"][metric] for run in entry["runs"]]
            assert summary["train"][metric]["mean"] == pytest.approx(np.mean(values))
            assert summary["train"][metric]["std"] == pytest.approx(np.std(values, ddof=1))
        assert summary["seconds"]["mean"] > 0
    table = (out / "compare.md").read_text()
    assert "| cnn |" in table and "| kmeans |" in table and "±" in table
    assert "| method | acc | nmi | ari | rand | purity | seconds |" in stdout


def test_compare_default_methods_skip_the_cnn_on_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, _ = run_cli(
        capsys,
        "compare",
        "--dataset",
        "moons",
        "--seed",
        "3",
        "--max-iter",
        "2",
        "--quiet",
        "--out",
        tmp_path / "c",
    )
    assert status == 0
    document = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert list(document["methods"]) == [
        "mlp",
        "linear",
        "nearest-centroid",
        "kmeans",
    ]


def test_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    status, _, _ = run_cli(
        capsys,
        "sweep",
        "--clusters",
        "2",
        "4",
        "--methods",
        "mlp",
        "kmeans",
        "--seed",
        "0",
        "1",
        "--max-iter",
        "2",
        "--quiet",
        "--out",
        out,
    )
    assert status == 0
    document = json.loads((out / "sweep.json").read_text())
    assert document["clusters"] == [2, 4]
    assert set(document["methods"]) == {"mlp", "kmeans"}
    for points in document["methods"].values():
        assert [p["n_clusters"] for p in points] == [2, 4]
        for point in points:
            check_metrics({m: point["summary"]["train"][m]["mean"] for m in METRICS})
            assert -1 <= point["silhouette"]["mean"] <= 1 and -1 <= point["stability"] <= 1
    for metric in (*METRICS, "inertia", "silhouette", "stability"):
        check_png(out / f"sweep_{metric}.png")
    assert "| K |" in (out / "sweep.md").read_text()


def test_regression_sweep_on_unlabelled_data_writes_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It crashed in its figures (labels' scores of None); label-free scores now."""
    path = tmp_path / "points.npy"
    np.save(path, np.random.default_rng(0).normal(size=(150, 4)).astype(np.float32))
    argv = ["sweep", "--dataset", path, "--clusters", "2", "3", "--methods", "linear", "kmeans"]
    status, _, err = run_cli(capsys, *argv, "--max-iter", "2", "--quiet", "--out", tmp_path / "s")
    assert status == 0, err
    document = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert document["methods"]["kmeans"][0]["summary"]["train"] is None
    for metric in ("inertia", "silhouette", "stability"):
        check_png(tmp_path / "s" / f"sweep_{metric}.png")
    assert not (tmp_path / "s" / "sweep_acc.png").exists()


# --------------------------------------------------------------------------- animate


def test_animate_moons_with_kmeans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "anim" / "moons.gif"
    status, stdout, _ = run_cli(
        capsys,
        "animate",
        "--n-samples",
        "200",
        "--max-iter",
        "3",
        "--resolution",
        "40",
        "--compare-kmeans",
        "--quiet",
        "--animation",
        path,
    )
    assert status == 0
    iterations = [int(n) for n in re.findall(r"(\d+) iterations", stdout)]
    assert len(iterations) == 2
    assert gif_frames(path) == max(iterations) + 1
    with Image.open(path) as image:
        assert image.size[0] > image.size[1]  # two panels side by side
    status, _, err = run_cli(capsys, "animate", "--animation", path, "--quiet")
    assert status == 2 and "exists" in err


def test_animate_a_2d_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.normal(0, 0.3, (60, 2)), rng.normal(3, 0.3, (60, 2))])
    path = tmp_path / "points.csv"
    np.savetxt(path, points, delimiter=",")
    gif = tmp_path / "points.gif"
    status, stdout, _ = run_cli(
        capsys,
        "animate",
        "--dataset",
        path,
        "--clusters",
        "2",
        "--max-iter",
        "4",
        "--resolution",
        "30",
        "--method",
        "linear",
        "--quiet",
        "--animation",
        gif,
    )
    assert status == 0
    (iterations,) = [int(n) for n in re.findall(r"(\d+) iterations", stdout)]
    assert gif_frames(gif) == iterations + 1


def test_animate_mp4_needs_ffmpeg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from matplotlib import animation

    if animation.writers.is_available("ffmpeg"):
        pytest.skip("ffmpeg is installed")
    status, _, err = run_cli(capsys, "animate", "--animation", tmp_path / "m.mp4")
    assert status == 2 and "ffmpeg" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- reproduce


@pytest.mark.slow
def test_reproduce_quick(
    shared_data_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rep"
    status, stdout, _ = run_cli(
        capsys,
        "reproduce",
        "--quick",
        "--subset",
        "1000",
        "--test-subset",
        "300",
        "--seed",
        "0",
        "--clusters",
        "2",
        "10",
        "--quiet",
        "--out",
        out,
    )
    assert status == 0
    document = json.loads((out / "reproduce.json").read_text())
    assert document["n_train"] == 1000 and document["n_test"] == 300
    assert set(document["methods"]) == {"kmeans", "cnn-1-step", "cnn-10-steps"}
    for entry in document["methods"].values():
        (run,) = entry["runs"]
        check_run_record(run, labels=True, test=True)
    assert document["protocol"]["kmeans"]["max_iter"] == 30
    assert document["protocol"]["cnn"]["steps_per_iter"] == {"cnn-1-step": 1, "cnn-10-steps": 10}
    assert [p["n_clusters"] for p in document["sweep"]["methods"]["kmeans"]] == [2, 10]
    n_iter = document["methods"]["cnn-10-steps"]["runs"][0]["n_iter"]
    assert n_iter <= 3
    assert gif_frames(out / "centroids.gif") == n_iter + 1
    assert len(list((out / "centroids").glob("iter_*.png"))) == n_iter + 1
    text = (out / "report.md").read_text()
    for number in ("0.880", "0.594", "0.851", "0.492"):
        assert number in text
    assert "Not comparable with the notebook" in text
    assert "one step" in text.lower() and "ten" in text
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert "centroids.gif" in links and "sweep_rand.png" in links and "sweep_purity.png" in links
    for link in links:
        assert not Path(link).is_absolute()
        target = out / link
        if target.suffix == ".png":
            check_png(target)
        else:
            assert gif_frames(target) >= 1
    assert "report:" in stdout


# --------------------------------------------------------------------------- protocol pieces


def test_resolve_threads() -> None:
    assert app_data.resolve_threads(3, 10) == 3
    assert app_data.resolve_threads(0, 1000) == 1
    assert app_data.resolve_threads(None, 10**8) is None


def test_kmeans_baseline_scales_uint8_like_the_estimator() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 8, 8), dtype=np.uint8)
    data = app_data.DataSplit("u8", images, rng.integers(0, 3, 50), image_shape=(8, 8))
    rows = data.rows("train")
    assert rows.dtype == np.float32 and rows.shape == (50, 64)
    np.testing.assert_allclose(rows, images.reshape(50, -1) / 255.0, rtol=1e-6)
    kmeans = ex.fit_kmeans(data, 3, 0, ex.NeuralConfig(max_iter=10))
    neural = ex.fit_neural(data, 3, 0, ex.NeuralConfig(network="nearest-centroid", max_iter=5))
    # both inertias in the [0, 1] units
    assert 0 < kmeans.inertia < 50 * 64 and 0 < neural.inertia < 50 * 64


def test_summarize_single_run_has_zero_std() -> None:
    run = ex.MethodRun(
        "m", 0, 2, np.zeros(3, int), None, dict.fromkeys(METRICS, 0.5), None, 1.0, 2, 3.0
    )
    summary = ex.summarize([run])
    assert summary["train"]["acc"] == {"mean": 0.5, "std": 0.0}
    assert summary["test"] is None
    assert report.mean_std(summary["train"]["acc"]) == "0.500"
    assert report.mean_std({"mean": 0.5, "std": 0.25}) == "0.500 ± 0.250"
    assert report.mean_std(None) == "—"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--method", "learned"],
        ["compare", "--methods", "mlp", "learned"],
        ["sweep", "--methods", "learned", "kmeans", "--clusters", "2", "3"],
    ],
)
def test_missing_umap_is_refused_before_any_work(
    argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without umap-learn, the learned mode is refused at once: one error line with the
    install command, status 2, before the data is read (the file named here does not
    exist, and that is not what the error says) and before any folder is made."""
    monkeypatch.setitem(sys.modules, "umap", None)  # find_spec("umap") is None: not installed
    missing = tmp_path / "missing.npz"
    status, out, err = run_cli(capsys, *argv, "--dataset", missing, "--out", tmp_path / "o")
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("error: --method"), err
    assert "needs umap-learn: pip install 'neural-kmeans[learned]'" in err
    assert "missing.npz" not in err and not out
    assert not (tmp_path / "o").exists()


def test_learned_params_reach_the_learned_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--learned-params`` is the estimator's ``learned_params``: the second search for
    the first clusters it asks for runs (its stage line shows) and results.json records
    it; a name that is no parameter is refused before any work (status 2, one line)."""
    from sklearn.datasets import load_digits

    path = tmp_path / "d.npz"
    np.savez(path, x_train=load_digits().images[:400])
    params = {"refine_rounds": 1, "umap_epochs": 30, "mixture_inits": 1, "steps_per_iter": 40}
    out = tmp_path / "l"
    status, _, err = run_cli(capsys, "run", "--dataset", path, "--method", "learned",
                             "--learned-params", json.dumps(params), "--clusters", "10",
                             "--out", out)  # fmt: skip
    assert status == 0, err
    assert "network features:" in err and "UMAP:" in err
    assert json.loads((out / "results.json").read_text())["config"]["learned_params"] == params
    status, out_text, err = run_cli(capsys, "run", "--dataset", path, "--method", "learned",
                                    "--learned-params", '{"refine_round": 1}',
                                    "--out", tmp_path / "o")  # fmt: skip
    assert status == 2 and err.count("\n") == 1 and "unknown names 'refine_round'" in err, err
    assert not (tmp_path / "o").exists() and not out_text
