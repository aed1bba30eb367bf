"""The playground's page in a real headless Chromium (Selenium and chromedriver): moons run
live with their regions and centroids drawn, pause, step and reset; a finished run, its
tables and an export; a bad upload's message; the centroid grid of images.

Skipped, with the reason, where Chromium, chromedriver or Selenium is missing (CI installs
them: ``apt-get install chromium chromium-driver``). ``NEURAL_KMEANS_SCREENSHOTS=DIR``
keeps the page's screenshots in DIR (the README's comes from here).
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from chromium import chromium_executables, js, open_chromium, set_value, wait
from PIL import Image
from selenium.webdriver.common.by import By
from serve_support import RunningServer

from neural_kmeans.app.serve.params import Limits

TAB10 = ["1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd", "8c564b", "e377c2", "7f7f7f"]
COLOURS = np.array([[int(c[i : i + 2], 16) for i in (0, 2, 4)] for c in TAB10])
#: Region colours: the cluster colours lightened as the page draws them (to within 1).
LIGHT = 255 - 0.3 * (255 - COLOURS)


def _executables() -> tuple[str, str]:
    executables = chromium_executables()
    if executables is None:
        pytest.skip(
            "Chromium or chromedriver is not installed (apt-get install chromium "
            "chromium-driver): the browser tests need them"
        )
    return executables


@pytest.fixture(scope="module")
def server():
    running = RunningServer(Limits())
    yield running
    running.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
    prefs = {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    driver = open_chromium(_executables(), tmp_path_factory.mktemp("chromium-profile"), prefs)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, server):
    browser.get(server.origin + "/")
    wait(browser, "window.playground.session !== null && window.playground.view")
    return browser


def click(driver, element_id: str) -> None:
    driver.find_element(By.ID, element_id).click()


def _pixels(url: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def canvas_pixels(driver, element_id: str) -> np.ndarray:
    """The canvas as drawn, (h, w, 3)."""
    return _pixels(js(driver, f"document.getElementById('{element_id}').toDataURL('image/png')"))


def region_shares(pixels: np.ndarray, k: int) -> np.ndarray:
    """The share of the canvas painted in each cluster's region colour."""
    flat = pixels.reshape(-1, 3)
    return np.array([np.all(np.abs(flat - LIGHT[j]) <= 1, axis=1).mean() for j in range(k)])


def check_centroids_drawn(driver, element_id: str, method: str, k: int) -> None:
    """Each centroid's star is drawn where it is, filled with its cluster's colour (unless
    a later star covers it)."""
    url, centroids, view = js(  # at one moment: the run goes on
        driver,
        f"[document.getElementById('{element_id}').toDataURL('image/png'), "
        f"window.playground.centroids.{method}, window.playground.view]",
    )
    pixels, centroids = _pixels(url), np.asarray(centroids)
    height, width = pixels.shape[:2]
    x0, x1, y0, y1 = view
    assert centroids.shape == (k, 2)
    columns = ((centroids[:, 0] - x0) / (x1 - x0) * width).astype(int)
    rows = (height - (centroids[:, 1] - y0) / (y1 - y0) * height).astype(int)
    drawn = 0
    for j in range(k):
        column, row = columns[j], rows[j]
        if not (2 <= column < width - 2 and 2 <= row < height - 2):
            continue
        covered = np.hypot(columns[j + 1 :] - column, rows[j + 1 :] - row).min(initial=99) < 12
        patch = pixels[row - 1 : row + 2, column - 1 : column + 2].reshape(-1, 3)
        assert covered or np.any(np.all(np.abs(patch - COLOURS[j]) <= 2, axis=1)), (method, j)
        drawn += not covered
    assert drawn >= 2


def screenshot(driver, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("NEURAL_KMEANS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    driver.save_screenshot(str(path))
    return path


# --------------------------------------------------------------------------- the tests


def test_moons_run_live_then_pause_step_and_reset(page):
    assert "moons: 1,000 samples" in page.find_element(By.ID, "data-summary").text
    for element_id, value in [
        ("k", 8),
        ("steps", 1),
        ("lr", "0.001"),
        ("max-iter", 60),
        ("speed", 10),
    ]:
        set_value(page, element_id, value)
    click(page, "run")
    wait(page, "window.playground.framesDrawn >= 11")  # the start and 10 iterations
    for canvas, method in (("neural-canvas", "neural"), ("kmeans-canvas", "kmeans")):
        shares = region_shares(canvas_pixels(page, canvas), 8)
        assert (shares > 0.02).sum() >= 2, shares  # the plane split into regions
        check_centroids_drawn(page, canvas, method, 8)
    assert "changed" in page.find_element(By.ID, "neural-caption").text

    click(page, "pause")
    wait(page, "window.playground.state === 'paused'")
    paused_at = js(page, "window.playground.lastIteration")
    time.sleep(0.6)
    assert js(page, "window.playground.lastIteration") == paused_at
    assert page.find_element(By.ID, "iteration").text == str(paused_at)

    click(page, "step")
    wait(page, f"window.playground.lastIteration === {paused_at + 1}")
    wait(page, "window.playground.state === 'paused'")
    time.sleep(0.4)
    assert js(page, "window.playground.lastIteration") == paused_at + 1
    assert page.find_element(By.ID, "iteration").text == str(paused_at + 1)

    click(page, "reset")
    wait(page, "window.playground.state === 'idle' && window.playground.centroids === null")
    assert page.find_element(By.ID, "iteration").text == "–"
    assert region_shares(canvas_pixels(page, "neural-canvas"), 8).max() < 0.001


def test_a_finished_run_shows_its_tables_and_exports_results(page, downloads, tmp_path):
    set_value(page, "k", 3)
    set_value(page, "speed", 0)
    click(page, "run")
    wait(page, "window.playground.state === 'done'")
    assert page.find_element(By.ID, "final").is_displayed()
    for table in ("contingency", "kmeans-contingency"):
        rows = page.find_element(By.ID, table).find_elements(By.TAG_NAME, "tr")
        assert len(rows) == 3  # the clusters, then the 2 classes
        counts = [
            int(cell.text) for row in rows[1:] for cell in row.find_elements(By.TAG_NAME, "td")
        ]
        assert sum(counts) == 1000
    scores = page.find_element(By.ID, "final-scores").text
    assert "neural-kmeans" in scores and "K-means" in scores
    assert "done:" in page.find_element(By.ID, "status").text
    screenshot(page, "playground.png", tmp_path)
    click(page, "export-results")
    target = downloads / "results.json"
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    results = json.loads(target.read_text())
    assert results["dataset"] == "moons" and results["n_clusters"] == 3
    assert set(results["methods"]) == {results["config"]["network_resolved"], "kmeans"}


def test_a_bad_upload_shows_its_error_and_the_page_goes_on(page, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,oops\n")
    set_value(page, "dataset", "__upload__")
    page.find_element(By.ID, "upload").send_keys(str(bad))
    click(page, "upload-button")
    wait(page, "!document.getElementById('error').hidden")
    message = page.find_element(By.ID, "error").text
    assert "bad.csv" in message and "not numeric" in message
    set_value(page, "dataset", "circles")
    wait(page, "document.getElementById('data-summary').textContent.startsWith('circles')")
    click(page, "step")
    wait(page, "window.playground.lastIteration === 1")


def test_images_show_the_centroid_grid_with_cluster_sizes(page, tmp_path):
    set_value(page, "dataset", "digits")
    wait(page, "document.getElementById('data-summary').textContent.startsWith('digits')")
    assert page.find_element(By.ID, "panels-images").is_displayed()
    assert not page.find_element(By.ID, "panels-points").is_displayed()
    assert page.find_element(By.ID, "k").get_attribute("value") == "10"
    set_value(page, "network", "mlp")
    set_value(page, "max-iter", 5)
    set_value(page, "speed", 0)
    click(page, "run")
    wait(page, "window.playground.state === 'done'")
    for grid in ("neural-grid", "kmeans-grid"):
        tiles = json.loads(page.find_element(By.ID, grid).get_attribute("data-tiles"))
        assert len(tiles) == 10
        assert len({x for x, *_ in tiles}) == 5 and len({y for _, y, *_ in tiles}) == 2  # 2x5
        pixels = canvas_pixels(page, grid)
        for x, y, w, h in tiles:
            tile = pixels[y : y + h, x : x + w]
            assert tile.std() > 10  # a drawn centroid, not a blank square
    screenshot(page, "playground-digits.png", tmp_path)


def test_points_are_added_and_removed_by_clicking(page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    summary = "document.getElementById('data-summary').textContent"
    wait(page, f"{summary}.startsWith('moons: 1,000 samples')")
    canvas = page.find_element(By.ID, "neural-canvas")
    ActionChains(page).move_to_element_with_offset(canvas, -150, 120).click().perform()
    wait(page, f"{summary}.startsWith('moons: 1,001 samples') && {summary}.includes('edited')")
    chain = ActionChains(page).move_to_element_with_offset(canvas, -150, 120)
    chain.key_down(Keys.SHIFT).click().key_up(Keys.SHIFT).perform()
    wait(page, f"{summary}.startsWith('moons: 1,000 samples')")
    click(page, "step")  # the edited points are what is clustered
    wait(page, "window.playground.lastIteration === 1")


def test_closing_the_page_stops_its_fit(page, server):
    set_value(page, "dataset", "moons")
    wait(page, "document.getElementById('data-summary').textContent.startsWith('moons')")
    set_value(page, "max-iter", 200)
    set_value(page, "speed", 1)
    click(page, "run")
    wait(page, "window.playground.lastIteration >= 1")
    (session,) = server.state.sessions.values()
    runner = session.runner
    assert runner.alive
    page.get("about:blank")  # the tab leaves the page
    deadline = time.monotonic() + 20
    while (runner.alive or server.state.sessions) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runner.alive and runner.outcome == "cancelled"
    assert not server.state.sessions
    assert len(runner.neural) < 10
