"""Runs in the playground, over the page's socket: every iteration's frame (regions,
clusters, centroids, K-means from the same start), pause, step, stop and reset, one fit
per page and a limit per server, edited points, images, the exports, the end of a run
whose page closes, and the command itself (its address, its warning, Ctrl-C)."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

from serve_support import RunningServer

from neural_kmeans.app.serve.params import Limits

PARAMS = {
    "n_clusters": 3,
    "network": "mlp",
    "init": "k-means++",
    "steps_per_iter": 5,
    "learning_rate": "",
    "seed": 0,
    "features": "pixels",
    "max_iter": 6,
    "tol": 0,
    "speed": 0,
}


@pytest.fixture(scope="module")
def server():
    running = RunningServer(Limits(max_samples=5000))
    yield running
    running.stop()


def decode(text: str, dtype=np.uint8) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def frames_until_done(page) -> tuple[dict, dict, list[dict]]:
    start, _ = page.until("start")
    done, before = page.until("done")
    return start, done, [m for m in before if m["type"] == "frame"]


def wait_for(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def no_frame_within(page, seconds: float) -> bool:
    try:
        while True:
            message = page.receive(timeout=seconds)
            if message["type"] == "frame":
                return False
    except TimeoutError:
        return True


# --------------------------------------------------------------------------- a run


def test_every_iteration_sends_regions_clusters_and_centroids_of_both_methods(server):
    with server.page() as page:
        data = page.load("moons", n_samples=300)
        points = decode(data["points"], np.float32).reshape(-1, 2)
        page.send(type="run", params={**PARAMS, "max_iter": 10})
        start, done, frames = frames_until_done(page)
    nx, ny = start["grid"]["nx"], start["grid"]["ny"]
    assert [f["iteration"] for f in frames] == list(range(done["n_iter"] + 1))
    first = frames[0]
    assert first["neural"]["centroids"] == first["kmeans"]["centroids"]  # the same start
    assert first["neural"]["labels"] is None and first["neural"]["regions"] is None
    for frame in frames[1:]:
        for part in (frame["neural"], frame["kmeans"]):
            labels = decode(part["labels"])
            regions = decode(part["regions"])
            assert labels.shape == (300,) and labels.max() < 3
            assert regions.shape == (nx * ny,) and regions.max() < 3
            assert np.unique(regions).size >= 2  # the plane is split into regions
            assert sum(part["record"]["sizes"]) == 300
            assert set(part["scores"]) >= {"acc", "nmi", "ari"}
    # the K-means side is Lloyd's algorithm: each assignment is the nearest centroid of
    # the iteration before
    kmeans = {f["kmeans"]["iteration"]: f["kmeans"] for f in frames}
    checked = 0
    for iteration, part in kmeans.items():
        if iteration >= 1 and iteration - 1 in kmeans:
            before = np.asarray(kmeans[iteration - 1]["centroids"])
            nearest = ((points[:, None, :] - before[None]) ** 2).sum(-1).argmin(1)
            assert np.mean(nearest == decode(part["labels"])) > 0.99
            checked += 1
    assert checked >= 3
    table = np.asarray(done["contingency"]["counts"])
    assert table.sum() == 300 and table.shape == (2, 3)


def test_step_pause_resume_and_stop(server):
    with server.page() as page:
        page.load("moons", n_samples=300)
        page.send(type="step", params={**PARAMS, "max_iter": 100, "speed": 20})
        page.until("start")
        assert page.until("frame")[0]["iteration"] == 0
        assert page.until("frame")[0]["iteration"] == 1
        assert page.until("status")[0]["state"] == "paused"
        assert no_frame_within(page, 0.5)
        page.send(type="step")
        assert page.until("frame")[0]["iteration"] == 2
        assert page.until("status")[0]["state"] == "paused"
        assert no_frame_within(page, 0.5)
        page.send(type="run")  # resume
        assert page.until("frame")[0]["iteration"] == 3
        page.send(type="pause")
        last, paused_at = 3, None
        while paused_at is None:
            message = page.receive()
            if message["type"] == "frame":
                last = message["iteration"]
            if message["type"] == "status" and message["state"] == "paused":
                paused_at = last
        assert no_frame_within(page, 0.5)
        page.send(type="stop")
        done = page.until("done")[0]
    assert done["stopped"] and done["n_iter"] == paused_at < 100


def test_one_fit_per_page_and_a_limit_on_the_server():
    server = RunningServer(Limits(max_fits=1))
    try:
        with server.page() as first, server.page() as second:
            first.load("moons", n_samples=300)
            second.load("moons", n_samples=300)
            first.send(type="run", params={**PARAMS, "max_iter": 100, "speed": 5})
            run = first.until("start")[0]["run"]
            first.until("frame")
            first.send(type="run", params=PARAMS)  # a second run from the same page
            more, _ = first.until("frame")
            assert more["run"] == run
            second.send(type="run", params=PARAMS)
            assert "running 1 fits already" in second.until("error")[0]["message"]
            first.send(type="reset")
            first.until("reset")
            assert wait_for(lambda: server.state.fit_slots.acquire(blocking=False))
            server.state.fit_slots.release()
            second.send(type="run", params=PARAMS)
            assert second.until("done")[0]["n_iter"] >= 1
    finally:
        server.stop()


def test_reset_and_a_closed_page_stop_the_work(server):
    with server.page() as page:
        page.load("moons", n_samples=300)
        page.send(type="run", params={**PARAMS, "max_iter": 200, "speed": 2})
        page.until("frame")
        session = server.state.sessions[page.session]
        runner = session.runner
        page.send(type="reset")
        page.until("reset")
        assert wait_for(lambda: not runner.alive) and runner.outcome == "cancelled"
        page.send(type="run", params={**PARAMS, "max_iter": 200, "speed": 2})
        page.until("frame")
        runner = session.runner
        assert runner.alive
    # the page is closed: its session goes and its fit ends
    assert wait_for(lambda: page.session not in server.state.sessions)
    assert wait_for(lambda: not runner.alive) and runner.outcome == "cancelled"
    assert len(runner.neural) < 20


def test_points_added_and_removed_by_clicking(server):
    with server.page() as page:
        data = page.load("moons", n_samples=300)
        x0, _, _, y1 = data["summary"]["view"]
        page.send(type="edit", add=[x0 + 0.01, y1 - 0.01])
        added = page.until("data")[0]
        assert added["summary"]["n_samples"] == 301 and added["summary"]["edited"]
        assert added["summary"]["n_labelled"] == 300
        points = decode(added["points"], np.float32).reshape(-1, 2)
        assert np.allclose(points[-1], [x0 + 0.01, y1 - 0.01], atol=1e-6)
        page.send(type="edit", remove=[x0 + 0.012, y1 - 0.012, 0.01])
        assert page.until("data")[0]["summary"]["n_samples"] == 300
        page.send(type="edit", add=[0.0, 0.0])
        page.until("data")
        page.send(type="run", params=PARAMS)
        done = page.until("done")[0]
        assert np.asarray(done["contingency"]["counts"]).sum() == 300  # labelled points only
        page.load("digits")
        page.send(type="edit", add=[0.0, 0.0])
        assert "2-D data only" in page.until("error")[0]["message"]


def test_images_send_the_centroid_images_and_cluster_sizes(server):
    with server.page() as page:
        data = page.load("digits")
        assert data["summary"]["mode"] == "images" and data["summary"]["image_shape"] == [8, 8]
        page.send(type="run", params={**PARAMS, "n_clusters": 10, "max_iter": 3})
        start, done, frames = frames_until_done(page)
    assert start["image_shape"] == [8, 8]
    for frame in frames:
        for part in (frame["neural"], frame["kmeans"]):
            images = decode(part["images"]).reshape(10, 8, 8)
            assert images.max() > images.min()
    assert sum(frames[-1]["neural"]["record"]["sizes"]) == 1797
    assert np.asarray(done["contingency"]["counts"]).shape[0] == 10


def test_mnist_subsets_are_offered_when_their_files_are_here(shared_data):
    server = RunningServer(Limits(), data_dir=shared_data)
    try:
        with server.page() as page:
            assert {"mnist", "fashion-mnist"} <= set(page.hello["datasets"])
            data = page.load("fashion-mnist", n_samples=2000)
            assert data["summary"]["n_samples"] == 2000
            assert data["summary"]["image_shape"] == [28, 28]
            page.send(
                type="run", params={**PARAMS, "n_clusters": 10, "network": "linear", "max_iter": 2}
            )
            _, done, frames = frames_until_done(page)
        assert decode(frames[-1]["neural"]["images"]).size == 10 * 28 * 28
        assert done["scores"]["neural-kmeans"]["acc"] > 0.2
    finally:
        server.stop()


def test_mnist_is_not_offered_without_its_files(server):
    with server.page() as page:
        assert "mnist" not in page.hello["datasets"]
        page.send(type="load", source={"name": "mnist"})
        assert "not available here" in page.until("error")[0]["message"]


# --------------------------------------------------------------------------- exports


def test_the_exports_of_a_finished_run(server, tmp_path):
    from PIL import Image

    from neural_kmeans import NeuralKMeans

    with server.page() as page:
        query = f"?session={page.session}"
        status, _, body = server.request("/api/export/results" + query)
        assert status == 409 and b"nothing to export yet" in body
        data = page.load("blobs", n_samples=200)
        points = decode(data["points"], np.float32).reshape(-1, 2)
        page.send(type="run", params=PARAMS)
        _, done, frames = frames_until_done(page)
        status, headers, body = server.request("/api/export/results" + query)
        assert status == 200 and 'filename="results.json"' in headers["content-disposition"]
        results = json.loads(body)
        status, _, model_file = server.request("/api/export/model" + query)
        assert status == 200
        status, _, gif = server.request("/api/export/gif" + query)
        assert status == 200
        assert server.request("/api/export/passwords" + query)[0] == 404
    assert set(results) == {"dataset", "n_clusters", "split", "methods", "config", "versions"}
    assert results["dataset"] == "blobs" and results["n_clusters"] == 3
    network = results["config"]["network_resolved"]
    assert set(results["methods"]) == {network, "kmeans"}  # the command line's names
    assert results["methods"][network]["train"] == done["scores"]["neural-kmeans"]
    assert results["methods"][network]["n_iter"] == done["n_iter"]
    assert results["config"]["n_train"] == 200
    path = tmp_path / "model.nkm"
    path.write_bytes(model_file)
    labels = NeuralKMeans.load(path).predict(points)
    assert np.array_equal(labels, decode(frames[-1]["neural"]["labels"]))
    with Image.open(io.BytesIO(gif)) as image:
        # one frame per iteration of the longer of the two methods, and the start
        longest = max(done["n_iter"], done["kmeans"]["n_iter"])
        assert image.format == "GIF" and image.n_frames == longest + 1


# --------------------------------------------------------------------------- the command


def _free_port() -> tuple[socket.socket, int]:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    return taken, taken.getsockname()[1]


def test_the_command_refuses_a_port_in_use():
    taken, port = _free_port()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "neural_kmeans", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        taken.close()
    assert run.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}" in run.stderr


def test_the_command_prints_its_address_warns_for_other_hosts_and_stops_on_ctrl_c():
    import urllib.request

    process = subprocess.Popen(
        [sys.executable, "-m", "neural_kmeans", "serve", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("neural-kmeans playground: http://127.0.0.1:"), line
        url = line.split()[2]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url + "api/health", timeout=30) as answer:
            assert json.loads(answer.read()) == {"ok": True}
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "stopped" in out
    assert "warning: listening on 0.0.0.0, not only on this machine" in err
    assert "Traceback" not in err
