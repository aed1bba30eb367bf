"""Checkpoints: written atomically each iteration, interrupted cleanly, resumed exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from neural_kmeans import NeuralKMeans
from neural_kmeans.core.validation import DivergenceError
from neural_kmeans.io import container
from neural_kmeans.io.checkpoint import (
    CHECKPOINT_FILE,
    CheckpointError,
    FitInterrupted,
    checkpoint_info,
    read_checkpoint,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def digits():
    return load_digits().images[:500].astype(np.float32) / 16


def signal_at(iteration: int, number: int = signal.SIGINT):
    """A callback that sends this process ``number`` during ``iteration``."""

    def send(state):
        if state.iteration == iteration:
            os.kill(os.getpid(), number)

    return send


def assert_same_fit(resumed, reference, X):
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    np.testing.assert_array_equal(resumed.cluster_centers_, reference.cluster_centers_)
    np.testing.assert_array_equal(resumed.initial_centers_, reference.initial_centers_)
    assert (resumed.n_iter_, resumed.inertia_, resumed.converged_) == (
        reference.n_iter_,
        reference.inertia_,
        reference.converged_,
    )
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in reference.history_]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history_] == strip
    mine, theirs = resumed.network_.state_dict(), reference.network_.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    np.testing.assert_array_equal(resumed.predict(X), reference.predict(X))


@pytest.mark.parametrize(
    ("network", "number"), [("mlp", signal.SIGINT), ("linear", signal.SIGTERM)]
)
def test_signal_stops_after_the_checkpoint_and_resume_equals_uninterrupted(
    network, number, digits, tmp_path, capsys
):
    params = {"n_clusters": 10, "network": network, "max_iter": 5, "random_state": 4}
    reference = NeuralKMeans(**params).fit(digits)
    assert reference.n_iter_ > 2
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    interrupted = NeuralKMeans(**params, checkpoint_dir=tmp_path, callbacks=signal_at(2, number))
    with pytest.raises(FitInterrupted) as info:
        interrupted.fit(digits)
    stop = info.value
    assert (stop.iteration, stop.signal_number, stop.checkpoint_dir) == (2, number, tmp_path)
    assert isinstance(stop, KeyboardInterrupt)
    assert f"interrupted by {signal.Signals(number).name} after iteration 2" in str(stop)
    assert "resume=True" in str(stop) and str(tmp_path) in str(stop)
    assert "finishing this iteration" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    info = checkpoint_info(tmp_path)
    assert (info["iteration"], info["done"]) == (2, False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE]
    # The last pass's sums travel with it: the resumed pass re-sums the changed samples.
    assert {"totals.sums", "totals.counts", "totals.weights"} <= read_checkpoint(tmp_path)[1].keys()

    resumed = NeuralKMeans(**params, checkpoint_dir=tmp_path).fit(digits, resume=True)
    assert_same_fit(resumed, reference, digits)


RUN_SCRIPT = r"""
import sys, time
import numpy as np
from sklearn.datasets import load_digits
from neural_kmeans import NeuralKMeans
from neural_kmeans.io.checkpoint import FitInterrupted

mode, folder, out = sys.argv[1:4]
X = load_digits().images[:600].astype(np.float32) / 16
params = dict(n_clusters=10, network="cnn", init="random", n_init=1, max_iter=5, random_state=3)
if mode == "interrupted":
    def slow(state):
        time.sleep(0.3)
    try:
        NeuralKMeans(**params, checkpoint_dir=folder, callbacks=slow).fit(X)
    except FitInterrupted as stop:
        print(f"error: {stop}", file=sys.stderr)
        sys.exit(130)
    sys.exit(0)
resumed = NeuralKMeans(**params, checkpoint_dir=folder).fit(X, resume=True)
reference = NeuralKMeans(**params).fit(X)
np.savez(out, resumed=resumed.labels_, reference=reference.labels_,
         n_iter=[resumed.n_iter_, reference.n_iter_])
"""


@pytest.mark.slow
def test_sigint_to_a_running_fit_then_resume_in_a_new_process(tmp_path):
    folder, out = tmp_path / "checkpoints", tmp_path / "labels.npz"
    command = [sys.executable, "-c", RUN_SCRIPT]
    run = subprocess.Popen(
        [*command, "interrupted", str(folder), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (folder / CHECKPOINT_FILE).exists():
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert "error: fit interrupted by SIGINT after iteration" in err
    assert f"checkpoint_dir={str(folder)!r}).fit(X, resume=True)" in err
    info = checkpoint_info(folder)
    assert not info["done"] and info["iteration"] < 5

    finish = subprocess.run(
        [*command, "resume", str(folder), str(out)], capture_output=True, text=True, timeout=300
    )
    assert finish.returncode == 0, finish.stderr
    labels = np.load(out)
    assert labels["n_iter"][0] == labels["n_iter"][1] > info["iteration"]
    np.testing.assert_array_equal(labels["resumed"], labels["reference"])


def test_resume_from_the_checkpoint_alone(digits, tmp_path):
    params = {"n_clusters": 6, "network": "mlp", "init": "random", "n_init": 1, "max_iter": 4}
    reference = NeuralKMeans(**params, random_state=1).fit(digits)
    with pytest.raises(FitInterrupted):
        NeuralKMeans(**params, random_state=1, checkpoint_dir=tmp_path, callbacks=signal_at(1)).fit(
            digits
        )
    model = NeuralKMeans.from_checkpoint(tmp_path)
    assert model.get_params()["init"] == "random" and model.random_state == 1
    assert_same_fit(model.fit(digits, resume=True), reference, digits)


def test_resume_with_a_larger_max_iter_continues(digits, tmp_path):
    params = {"n_clusters": 10, "network": "linear", "random_state": 2}
    reference = NeuralKMeans(**params, max_iter=5).fit(digits)
    assert reference.n_iter_ == 5 and not reference.converged_
    NeuralKMeans(**params, max_iter=3, checkpoint_dir=tmp_path).fit(digits)
    assert checkpoint_info(tmp_path)["iteration"] == 3
    resumed = NeuralKMeans(**params, max_iter=5, checkpoint_dir=tmp_path).fit(digits, resume=True)
    assert_same_fit(resumed, reference, digits)


def test_a_finished_checkpoint_resumes_to_its_result(digits, tmp_path):
    def stop_at_two(state):
        return state.iteration == 2

    params = {"n_clusters": 10, "network": "mlp", "max_iter": 6, "random_state": 0}
    first = NeuralKMeans(**params, checkpoint_dir=tmp_path, callbacks=stop_at_two).fit(digits)
    assert checkpoint_info(tmp_path)["done"]
    calls = []
    again = NeuralKMeans(**params, checkpoint_dir=tmp_path, callbacks=calls.append).fit(
        digits, resume=True
    )
    assert calls == [] and again.n_iter_ == 2
    assert_same_fit(again, first, digits)


def test_a_checkpoint_is_never_silently_overwritten(digits, tmp_path):
    params = {"n_clusters": 4, "network": "mlp", "max_iter": 1, "checkpoint_dir": tmp_path}
    NeuralKMeans(**params).fit(digits)
    # Regression: a fit that ran its max_iter iterations was described as "unfinished".
    message = r"already holds a checkpoint \(finished its max_iter=1 iterations; resume=True"
    with pytest.raises(CheckpointError, match=message):
        NeuralKMeans(**params).fit(digits)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": "values"}, r"other data: X has the same shape but different values"),
        ({"data": "shape"}, r"data of shape \(500, 8, 8\) \(float32\), but X has shape \(499"),
        ({"learning_rate": 0.5}, r"other parameters: learning_rate=None there, 0.5 here"),
        ({"network": "linear"}, r"network='mlp' there, 'linear' here"),
    ],
)
def test_resume_checks_the_data_and_parameters(digits, tmp_path, change, message):
    params = {"n_clusters": 4, "network": "mlp", "max_iter": 2, "random_state": 0}
    NeuralKMeans(**params, checkpoint_dir=tmp_path).fit(digits)
    X = digits
    if change.get("data") == "values":
        X = digits.copy()
        X[0, 0, 0] += 1.0
    elif change.get("data") == "shape":
        X = digits[:-1]
    params.update({k: v for k, v in change.items() if k != "data"})
    with pytest.raises(CheckpointError, match=message):
        NeuralKMeans(**params, checkpoint_dir=tmp_path).fit(X, resume=True)


def test_resume_without_a_checkpoint(digits, tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*without resume=True"):
        NeuralKMeans(3, checkpoint_dir=tmp_path).fit(digits, resume=True)


def test_a_damaged_checkpoint_is_a_clear_error(digits, tmp_path):
    NeuralKMeans(3, network="mlp", max_iter=2, checkpoint_dir=tmp_path).fit(digits)
    path = tmp_path / CHECKPOINT_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        NeuralKMeans(3, network="mlp", max_iter=2, checkpoint_dir=tmp_path).fit(digits, resume=True)


def test_an_unusable_folder_is_refused_before_any_work(digits, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointError, match=r"cannot write checkpoints to .*a-file"):
        NeuralKMeans(3, network="mlp", checkpoint_dir=blocker / "sub").fit(digits)


def test_a_failed_write_keeps_the_previous_checkpoint_whole(digits, tmp_path, monkeypatch):
    replace = os.replace

    def fail_on_second(state):
        if state.iteration == 2:
            monkeypatch.setattr(container.os, "replace", failing)

    def failing(source, target):
        raise OSError("no space left on device")

    model = NeuralKMeans(
        4, network="mlp", max_iter=4, checkpoint_dir=tmp_path, callbacks=fail_on_second
    )
    with pytest.raises(CheckpointError, match=r"iteration 2 .*no space left"):
        model.fit(digits)
    monkeypatch.setattr(container.os, "replace", replace)
    header, _ = read_checkpoint(tmp_path)
    assert header["iteration"] == 1 and len(header["history"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE]


def test_divergence_leaves_the_last_good_checkpoint(digits, tmp_path, poisonable):
    def poison_after_two(state):
        state.network.poisoned = state.iteration == 2

    model = NeuralKMeans(
        5, network=poisonable, max_iter=6, checkpoint_dir=tmp_path, callbacks=poison_after_two
    )
    with pytest.raises(DivergenceError, match="iteration 3"):
        model.fit(digits)
    header, tensors = read_checkpoint(tmp_path)
    assert header["iteration"] == 2
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_no_handlers_without_checkpoints_and_none_outside_the_main_thread(digits, tmp_path):
    seen = []

    def record_handler(state):
        seen.append(signal.getsignal(signal.SIGINT))

    before = signal.getsignal(signal.SIGINT)
    NeuralKMeans(3, network="linear", max_iter=1, callbacks=record_handler).fit(digits)
    assert seen == [before]

    errors = []

    def fit_in_thread():
        try:
            NeuralKMeans(3, network="linear", max_iter=2, checkpoint_dir=tmp_path).fit(digits)
        except Exception as error:  # reported below
            errors.append(error)

    thread = threading.Thread(target=fit_in_thread)
    thread.start()
    thread.join()
    assert errors == [] and checkpoint_info(tmp_path)["iteration"] >= 1
    assert signal.getsignal(signal.SIGINT) == before


def test_an_ignored_signal_stays_ignored(digits, tmp_path):
    seen = []

    def record_handlers(state):
        seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        NeuralKMeans(
            3, network="linear", max_iter=1, checkpoint_dir=tmp_path, callbacks=record_handlers
        ).fit(digits)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
    ((during_int, during_term),) = seen
    assert during_term == signal.SIG_IGN
    assert callable(during_int) and during_int is not signal.default_int_handler
