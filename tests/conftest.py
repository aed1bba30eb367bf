"""Shared test fixtures: a hermetic data environment, the shared data sets, a network that
turns NaN on demand."""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

#: ``shared/data`` beside the repository root: MNIST and Fashion-MNIST IDX files.
SHARED_DATA = Path(__file__).parents[1].parent / "shared" / "data"

_DATA_ENV = ("NEURAL_KMEANS_DATA", "NEURAL_KMEANS_MIRROR", "NEURAL_KMEANS_TIMEOUT")


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal delivers it: a test run started in the background by a shell
    without job control inherits SIGINT ignored (and passes that on to its subprocesses),
    which the interruption tests would take for the library ignoring it."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _hermetic_data_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point the data cache at a temporary folder, clear the data variables, and pin
    bfloat16 off.

    No test reads the user's cache or downloads from the default mirrors unless it
    sets the variables itself (with ``monkeypatch``).
    """
    patch = pytest.MonkeyPatch()
    patch.setenv("NEURAL_KMEANS_CACHE", str(tmp_path_factory.mktemp("neural-kmeans-cache")))
    # bfloat16 autocast switches on by processor family: accuracy thresholds are held
    # in float32 everywhere (tests of the bfloat16 path set it themselves).
    patch.setenv("NEURAL_KMEANS_BFLOAT16", "0")
    patch.setenv("NEURAL_KMEANS_RETRIES", "0")
    for name in _DATA_ENV:
        patch.delenv(name, raising=False)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (holding ``mnist/`` and ``fashion-mnist/``), or skip."""
    if not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "fashion-mnist").is_dir():
        pytest.skip(f"shared data sets not found at {SHARED_DATA} (need mnist/, fashion-mnist/)")
    return SHARED_DATA


@pytest.fixture
def shared_data_env(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set ``NEURAL_KMEANS_DATA`` to the shared data folder for one test."""
    monkeypatch.setenv("NEURAL_KMEANS_DATA", str(shared_data))
    return shared_data


class Poisonable(torch.nn.Module):
    """A linear classifier whose outputs turn NaN in eval mode once ``poisoned``."""

    def __init__(self, input_shape, n_clusters):
        super().__init__()
        self.linear = torch.nn.Linear(math.prod(input_shape), n_clusters)
        self.poisoned = False

    def forward(self, x):
        out = self.linear(x.reshape(x.shape[0], -1))
        return out * math.nan if self.poisoned and not self.training else out


@pytest.fixture
def poisonable() -> type[Poisonable]:
    """A network factory (:class:`Poisonable`): set ``state.network.poisoned`` in a
    callback to make the network's outputs NaN."""
    return Poisonable
