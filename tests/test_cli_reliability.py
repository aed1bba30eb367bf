"""The command line's promises: saved models, checkpoints that survive Ctrl-C, and
output folders that are never overwritten."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neural_kmeans.app.cli import main

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neural_kmeans", *argv],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_clean_error(result: subprocess.CompletedProcess | None, capsys=None) -> str:
    err = result.stderr if result is not None else capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_saved_model_predicts_the_fitted_labels(tmp_path, capsys):
    model = tmp_path / "model.nkm"
    argv = ["run", "--method", "mlp", "--max-iter", "4", "--quiet", "--no-kmeans"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--save-model", str(model)]) == 0
    labels = tmp_path / "pred.npy"
    predict = ["predict", "--model", str(model), "--dataset", "digits", "--labels", str(labels)]
    assert main(predict) == 0
    assert "acc" in capsys.readouterr().out  # digits has labels: metrics are printed
    predicted = np.load(labels)
    np.testing.assert_array_equal(predicted, np.load(tmp_path / "run" / "labels.npy"))
    # the same output file again needs --overwrite
    assert main(predict) == 2
    assert "--overwrite" in _assert_clean_error(None, capsys)


@pytest.mark.slow
def test_damaged_model_file_is_a_clean_error(tmp_path):
    model = tmp_path / "model.nkm"
    assert (
        _run(
            "run",
            "--method",
            "linear",
            "--max-iter",
            "2",
            "--quiet",
            "--no-kmeans",
            "--out",
            str(tmp_path / "run"),
            "--save-model",
            str(model),
        ).returncode
        == 0
    )
    content = bytearray(model.read_bytes())
    content[len(content) // 2] ^= 0x01
    damaged = tmp_path / "damaged.nkm"
    damaged.write_bytes(bytes(content))
    result = _run(
        "predict",
        "--model",
        str(damaged),
        "--dataset",
        "digits",
        "--labels",
        str(tmp_path / "x.npy"),
    )
    assert result.returncode == 2
    assert "digest" in _assert_clean_error(result)
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--out", "/proc/neural-kmeans-out"], "cannot write into"),
        (["--save-model", "/nonexistent-folder/model.nkm"], "does not exist"),
        (["--checkpoint", "a", "--resume", "b"], "not two different folders"),
    ],
)
def test_bad_output_places_fail_before_any_work(tmp_path, capsys, extra, message):
    argv = ["run", "--method", "mlp", "--max-iter", "2", "--quiet", "--no-kmeans"]
    if "--out" not in extra:
        argv += ["--out", str(tmp_path / "run")]
    assert main([*argv, *extra]) == 2
    assert message in _assert_clean_error(None, capsys)


def test_results_folder_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--method", "linear", "--max-iter", "2", "--quiet", "--no-kmeans"]
    assert main([*argv, "--out", str(out)]) == 0
    before = (out / "results.json").read_bytes()
    assert main([*argv, "--out", str(out), "--seed", "5"]) == 2
    assert "--overwrite" in _assert_clean_error(None, capsys)
    assert (out / "results.json").read_bytes() == before
    assert main([*argv, "--out", str(out), "--seed", "5", "--overwrite"]) == 0


@pytest.mark.slow
def test_ctrl_c_checkpoints_and_resume_gives_the_uninterrupted_labels(tmp_path):
    # 6,000 random 28x28 images: each CNN iteration takes long enough to interrupt.
    rng = np.random.default_rng(0)
    data = tmp_path / "images.npy"
    np.save(data, rng.integers(0, 256, size=(6_000, 28, 28), dtype=np.uint8))
    common = [
        "run",
        "--dataset",
        str(data),
        "--clusters",
        "5",
        "--method",
        "cnn",
        "--max-iter",
        "6",
        "--seed",
        "1",
        "--no-kmeans",
        "--threads",
        "1",
    ]
    checkpoint = tmp_path / "checkpoint"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neural_kmeans",
            *common,
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "interrupted"),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not any(checkpoint.glob("*.safetensors")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    resumed = _run(*common, "--resume", str(checkpoint), "--out", str(tmp_path / "resumed"))
    assert resumed.returncode == 0, resumed.stderr
    straight = _run(*common, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    np.testing.assert_array_equal(
        np.load(tmp_path / "resumed" / "labels.npy"),
        np.load(tmp_path / "straight" / "labels.npy"),
    )
    assert not Path(tmp_path / "interrupted" / "labels.npy").exists()
