"""The playground's server without a browser, running for real (uvicorn on a free port):
its refusals (foreign hosts and origins, bad parameters, oversized or bad uploads), whole
runs over the socket, pause and step, the exports, and the end of a run whose page goes."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

from serve_support import RunningServer
from websockets.exceptions import InvalidStatus

from neural_kmeans.app.serve.params import Limits

LIMITS = Limits(max_samples=5000, max_upload_bytes=50_000)
FAST = {
    "n_clusters": 3,
    "network": "mlp",
    "init": "k-means++",
    "steps_per_iter": 5,
    "learning_rate": "",
    "seed": 0,
    "features": "pixels",
    "max_iter": 4,
    "tol": 0,
    "speed": 0,
}


@pytest.fixture(scope="module")
def server():
    running = RunningServer(LIMITS)
    yield running
    running.stop()


@pytest.fixture
def page(server):
    with server.page() as opened:
        opened.load("moons", n_samples=300)
        yield opened


def decode(text: str, dtype=np.uint8) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


# --------------------------------------------------------------------------- refusals


def test_the_page_is_served_with_a_policy_that_forbids_foreign_scripts(server):
    status, headers, body = server.request("/")
    assert status == 200 and b"neural-kmeans playground" in body
    headers = {k.lower(): v for k, v in headers.items()}
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    for script in ("/static/app.js", "/static/draw.js"):
        status, _, body = server.request(script)
        assert status == 200
        assert b"http://" not in body and b"https://" not in body  # nothing fetched elsewhere


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1:1", "localhost.evil:{port}"])
def test_a_foreign_host_is_refused_so_dns_rebinding_gets_nothing(server, host):
    status, _, body = server.request("/", headers={"Host": host.format(port=server.port)})
    assert status == 403 and b"does not answer for host" in body
    with pytest.raises(InvalidStatus) as refused:
        server.page(host=host.format(port=server.port)).close()
    assert refused.value.response.status_code == 403


def test_a_foreign_origin_is_refused_on_http_and_on_the_socket(server):
    upload = "/api/upload?session=x&name=a.csv"
    status, _, body = server.request(
        upload, data=b"1,2\n", headers={"Origin": "http://evil.example"}
    )
    assert status == 403 and b"are not accepted" in body
    status, _, body = server.request(upload, data=b"1,2\n")  # no Origin at all
    assert status == 403 and b"must name its Origin" in body
    for origin in (f"http://evil.example:{server.port}", f"https://127.0.0.1:{server.port}"):
        with pytest.raises(InvalidStatus) as refused:
            server.page(origin=origin).close()
        assert refused.value.response.status_code == 403
    with server.page() as page:  # the server's own origin is welcome
        assert page.hello["limits"]["max_samples"] == 5000


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"n_clusters": 0}, "K: expected an integer between 1 and 50"),
        ({"n_clusters": 51}, "K: expected an integer between 1 and 50"),
        ({"n_clusters": "3.5"}, "K: expected an integer"),
        ({"network": "resnet"}, "network: choose one of auto, cnn, mlp"),
        ({"learning_rate": "fast"}, "learning rate: expected a number"),
        ({"max_iter": 10_000}, "iterations: expected an integer between 1 and 200"),
        ({"tol": 2}, "tolerance: expected a number between 0 and 1"),
        ({"speed": -1}, "speed"),
        ({"seed": -1}, "seed: expected an integer between 0"),
        ({"colour": "red"}, "unknown parameter(s): colour"),
        ({"network": "cnn"}, "network='cnn' needs images"),
    ],
)
def test_bad_parameters_get_a_clear_message_and_start_nothing(page, change, expected):
    page.send(type="run", params={**FAST, **change})
    error, before = page.until("error")
    assert expected in error["message"]
    assert not any(m["type"] == "frame" for m in before)


def test_k_above_the_number_of_samples_is_refused_as_on_the_command_line(server):
    with server.page() as page:
        page.load("blobs", n_samples=20)
        page.send(type="run", params={**FAST, "n_clusters": 30})
        message = page.until("error")[0]["message"]
        assert "out of range: blobs has 20 training samples" in message


def test_bad_messages_and_unknown_data_are_answered_and_the_page_goes_on(page):
    page.socket.send("not json")
    assert "JSON" in page.until("error")[0]["message"]
    page.send(type="explode")
    assert "unknown message type" in page.until("error")[0]["message"]
    page.send(type="load", source={"name": "/etc/passwd"})
    assert "not available here" in page.until("error")[0]["message"]
    page.send(type="load", source={"name": "moons", "n_samples": 10**9})
    assert "samples: expected an integer between 1 and 5000" in page.until("error")[0]["message"]
    page.send(type="edit", add=["x", 1])
    assert "add: expected 2 finite numbers" in page.until("error")[0]["message"]
    page.send(type="run", params={**FAST, "n_clusters": 2})
    assert page.until("done")[0]["n_iter"] >= 1  # still working


# --------------------------------------------------------------------------- uploads


def test_an_oversized_upload_is_refused(server, page):
    status, answer = server.upload(page.session, "big.npy", b"\0" * 50_001)
    assert status == 413
    assert "over the upload limit of 50,000 bytes" in answer["error"]


def test_bad_uploads_are_checked_as_the_command_line_checks_them(server, page):
    status, answer = server.upload(page.session, "notes.txt", b"hello")
    assert status == 400 and "unsupported file type '.txt'" in answer["error"]
    assert page.until("error")[0]["message"] == answer["error"]  # the page is told too
    status, answer = server.upload(page.session, "bad.csv", b"a,b\n1,x\n")
    message = answer["error"]
    assert status == 400 and "'bad.csv' is not numeric" in message
    assert "/tmp" not in message and "upload.csv" not in message  # no path of the server
    assert page.until("error")[0]["message"] == message
    status, answer = server.upload(page.session, "../../etc/x.npy", b"not an array")
    assert status == 400 and "'x.npy'" in answer["error"]
    status, answer = server.upload("no-such-session", "a.csv", b"1,2\n")
    assert status == 404 and "reload the page" in answer["error"]


def test_too_many_samples_in_an_upload_are_refused(server, page):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((5001, 2), dtype=np.float32))
    status, answer = server.upload(page.session, "many.npy", buffer.getvalue())
    assert status == 400
    assert "5,001 samples; the playground takes at most 5,000" in answer["error"]


def test_a_good_upload_becomes_the_pages_data_and_is_clustered(server, page):
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 0.3, (60, 2)), rng.normal(3, 0.3, (60, 2))]).astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=np.repeat([0, 1], 60))
    status, answer = server.upload(page.session, "two.npz", buffer.getvalue())
    assert status == 200, answer
    summary = answer["summary"]
    assert summary["mode"] == "2d" and summary["n_samples"] == 120
    assert summary["n_classes"] == 2 and summary["editable"]
    assert page.until("data")[0]["summary"]["name"] == "two.npz"
    page.send(type="run", params={**FAST, "n_clusters": 2})
    done = page.until("done")[0]
    assert done["scores"]["neural-kmeans"]["acc"] == 1.0
    assert done["contingency"]["counts"] == [[60, 0], [0, 60]]


def test_rows_of_many_features_are_drawn_through_a_projection(server, page):
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(0, 1, (50, 6)), rng.normal(6, 1, (50, 6))])
    text = "\n".join(",".join(f"{v:.4f}" for v in row) for row in x).encode()
    status, answer = server.upload(page.session, "rows.csv", text)
    assert status == 200 and answer["summary"]["mode"] == "rows"
    page.send(type="run", params={**FAST, "n_clusters": 2})
    frame = page.until("frame")[0]
    assert len(frame["neural"]["centroids"]) == 2 and len(frame["neural"]["centroids"][0]) == 2
    assert frame["neural"]["regions"] is None


def test_uploaded_images_are_shown_as_images(server, page):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(40, 8, 8), dtype=np.uint8)
    images[:20, :4] = 0  # two kinds: dark top, dark bottom
    images[20:, 4:] = 0
    buffer = io.BytesIO()
    np.save(buffer, images)
    status, answer = server.upload(page.session, "tiles.npy", buffer.getvalue())
    assert status == 200, answer
    assert answer["summary"]["mode"] == "images" and answer["summary"]["image_shape"] == [8, 8]
    assert answer["summary"]["n_classes"] is None
    page.send(type="run", params={**FAST, "n_clusters": 2})
    frame = page.until("frame")[0]
    assert decode(frame["neural"]["images"]).size == 2 * 8 * 8
    done = page.until("done")[0]
    assert done["contingency"] is None and done["scores"]["neural-kmeans"] is None
