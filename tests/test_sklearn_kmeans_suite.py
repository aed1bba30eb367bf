"""scikit-learn's own K-means test suite, read from the installed scikit-learn, run against
``NeuralKMeans(network="nearest-centroid")`` (the adapter and the list of deselected and
expected-to-fail tests, with their reasons: ``tests/kmeans_adapter.py``).

It runs in a subprocess, so that replacing ``sklearn.cluster.KMeans`` never reaches the
other tests. ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED`` (scikit-learn's convention: ``42``
by default, ``"all"`` or a range such as ``"0-29"``) is passed through, as is
``SKLEARN_RUN_FLOAT32_TESTS``, which is on here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sklearn

SUITE = Path(sklearn.__file__).parent / "cluster" / "tests" / "test_k_means.py"
TESTS = Path(__file__).parent


@pytest.mark.slow
def test_scikit_learn_kmeans_suite_passes_against_the_nearest_centroid_network(tmp_path):
    if not SUITE.is_file():
        pytest.skip(f"scikit-learn's tests are not installed ({SUITE} is missing)")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "SKLEARN_RUN_FLOAT32_TESTS": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "kmeans_adapter", f"--rootdir={SUITE.parents[2]}", str(SUITE)]
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    counts = dict((name, int(number)) for number, name in re.findall(r"(\d+) (\w+)", summary))
    assert counts.get("failed", 0) == 0 and counts.get("passed", 0) >= 140, summary
    assert counts.get("xfailed", 0) <= 6, summary  # only the verbose wording
