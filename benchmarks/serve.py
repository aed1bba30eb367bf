"""The playground's speed as a person sees it: time to the first frame and iterations drawn
per second, in a real headless Chromium, on moons (1,000 points) and on a 10,000-image
MNIST subset (linear and MLP networks).

It starts ``neural-kmeans serve`` (the command, as a user does), opens the page, and
for each case picks the data and the settings, presses Run and reads the page's own
clock (``performance.now()``): when Run was pressed, when each iteration's frame was
drawn into its canvases, and when the first one was on screen (the next animation
frame). Every case runs ``--repeats`` times; the table gives medians.

Usage::

    python benchmarks/serve.py --data-dir ../shared/data [--repeats 5] [--out table.md]

Needs the serve extra, selenium, and Debian's ``chromium`` with ``chromium-driver``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from speed import versions  # benchmarks/ is on the path when run

# The browser tests' Selenium helpers (tests/chromium.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chromium import chromium_executables, js, open_chromium, set_value
from chromium import wait as wait_until

#: (label, data set, run settings) on the page's default data (moons: 1,000 points,
#: noise 0.08; MNIST: a 10,000-image subset of the training images); speed 0.
CASES = [
    ("moons 1,000, page defaults", "moons", {"k": 2, "network": "auto", "max-iter": 30}),
    (
        "moons 1,000, 100 iterations",
        "moons",
        {"k": 8, "network": "mlp", "steps": 1, "lr": "0.001", "max-iter": 100},
    ),
    ("MNIST 10,000, linear", "mnist", {"k": 10, "network": "linear", "max-iter": 20}),
    ("MNIST 10,000, MLP", "mnist", {"k": 10, "network": "mlp", "max-iter": 20}),
]


def start_server(data_dir: str | None) -> tuple[subprocess.Popen, str, float]:
    command = [sys.executable, "-m", "neural_kmeans", "serve", "--port", "0"]
    if data_dir:
        command += ["--data-dir", data_dir]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    line = process.stdout.readline()
    if "http://" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return process, line.split()[2], time.perf_counter() - started


def open_browser():
    executables = chromium_executables()
    if executables is None:
        raise SystemExit(
            "needs chromium and chromedriver: apt-get install chromium chromium-driver"
        )
    return open_chromium(executables, tempfile.mkdtemp(prefix="chromium-"))


def wait(driver, condition: str) -> None:
    wait_until(driver, condition, seconds=600, poll=0.02)


def load(driver, dataset: str) -> None:
    set_value(driver, "dataset", dataset)
    wait(driver, f"document.getElementById('data-summary').textContent.startsWith('{dataset}:')")


def one_run(driver, settings: dict) -> dict:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "reset").click()
    wait(driver, "window.playground.state === 'idle'")
    for element_id, value in {"steps": 10, "lr": "", "speed": 0, **settings}.items():
        set_value(driver, element_id, value)
    driver.find_element(By.ID, "run").click()
    wait(driver, "['done', 'failed'].includes(window.playground.state)")
    if js(driver, "window.playground.state") == "failed":
        raise SystemExit(f"the run failed: {js(driver, 'window.playground.errors')}")
    wait(driver, "window.playground.paintTimes.length === window.playground.frameTimes.length")
    clicked = js(driver, "window.playground.runClickedAt")
    drawn = js(driver, "window.playground.frameTimes")  # [0]: the start, [i]: iteration i
    painted = js(driver, "window.playground.paintTimes")
    iterations = len(drawn) - 1
    rate = (iterations - 1) / ((drawn[-1] - drawn[1]) / 1000) if iterations > 1 else float("nan")
    return {
        "first_drawn_ms": drawn[1] - clicked,
        "first_on_screen_ms": painted[1] - clicked,
        "iterations": iterations,
        "per_second": rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (else skipped)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    process, url, startup = start_server(args.data_dir)
    driver = open_browser()
    rows = []
    try:
        driver.get(url)
        wait(driver, "window.playground.session !== null && window.playground.view")
        available = js(driver, "[...document.getElementById('dataset').options].map(o => o.value)")
        for label, dataset, settings in CASES:
            if dataset not in available:
                print(f"skipped {label}: {dataset} is not here (give --data-dir)", file=sys.stderr)
                continue
            load(driver, dataset)
            runs = [one_run(driver, settings) for _ in range(args.repeats)]
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            rows.append((label, median))
            print(f"{label}: {median}", file=sys.stderr)
        browser = driver.capabilities.get("browserVersion", "?")
    finally:
        driver.quit()
        process.terminate()
        process.wait(30)
    import starlette
    import uvicorn

    lines = [
        f"Machine: {versions()}; starlette {starlette.__version__}, uvicorn "
        f"{uvicorn.__version__}, Chromium {browser} (headless). Server start (warm-up "
        f"included): {startup:.1f} s. Medians of {args.repeats} runs, speed 'as fast as it "
        "goes'.",
        "",
        "| case | iterations | first iteration drawn | on screen | iterations drawn / s |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, m in rows:
        lines.append(
            f"| {label} | {m['iterations']:.0f} | {m['first_drawn_ms']:.0f} ms | "
            f"{m['first_on_screen_ms']:.0f} ms | {m['per_second']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
