"""The package's shape: layers that import downwards only, no import cycles, small
modules and functions, nothing done at import time, a fast ``--help``."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src" / "neural_kmeans"
ROOT = Path(__file__).parents[1]
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 100


def test_layers_import_downwards_only_and_no_module_is_in_a_cycle():
    """import-linter's contracts in pyproject.toml: app > estimator > io | representation >
    core, and no cycles among sibling modules at any depth."""
    command = shutil.which("lint-imports", path=os.path.dirname(sys.executable))
    if command is None:
        pytest.skip("import-linter is not installed (the 'test' extra brings it)")
    run = subprocess.run([command], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "2 kept, 0 broken" in run.stdout


def test_no_module_or_function_is_too_long():
    too_long = []
    for path in sorted(SOURCE.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(SOURCE)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(SOURCE)}:{node.name}: {length} lines")
    assert too_long == []


def test_importing_the_package_loads_nothing_heavy_and_changes_no_environment():
    code = (
        "import os, sys; before = dict(os.environ); import neural_kmeans; "
        "heavy = [m for m in ('torch', 'sklearn', 'matplotlib', 'umap', 'numpy') "
        "if m in sys.modules]; print(dict(os.environ) == before, heavy)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.stdout.strip() == "True []", run.stderr


def test_the_command_line_answers_help_and_version_without_loading_torch():
    """``--help`` and ``--version`` import only the parser (timed in the README, not
    here: wall time is no test)."""
    code = (
        "import sys; from neural_kmeans.app.cli import main; "
        "status = [main(['--help']), main(['--version']), main(['run', '--help'])]; "
        "print(status, [m for m in ('torch', 'sklearn', 'numpy') if m in sys.modules], "
        "file=sys.stderr)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stderr.strip().splitlines()[-1] == "[0, 0, 0] []", run.stderr
    assert "usage: neural-kmeans" in run.stdout


def test_regression_installed_version_is_the_package_version():
    """The installed metadata said 0.1.0 while ``neural-kmeans --version`` said 0.2.0:
    pyproject.toml now reads the version from the package."""
    from importlib.metadata import version

    import neural_kmeans

    assert version("neural-kmeans") == neural_kmeans.__version__


def test_the_public_names_load_on_first_use():
    import neural_kmeans

    assert neural_kmeans.NeuralKMeans.__name__ == "NeuralKMeans"
    assert callable(neural_kmeans.load_dataset) and callable(neural_kmeans.evaluate)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = neural_kmeans.nothing
