"""The playground's limits and the parameters of a run, checked before any work: the
ranges the command line's options take (and the estimator's own constraints, which
:class:`~neural_kmeans.app.serve.runner.FitRunner` checks next), within the limits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from neural_kmeans.app.errors import UsageError
from neural_kmeans.core.validation import FEATURE_NAMES, INIT_NAMES, NETWORK_NAMES

#: The data set names a page may pick (MNIST-like ones only when their files are here).
TOY_SETS = ("moons", "blobs", "circles")
IMAGE_SETS = ("digits", "mnist", "fashion-mnist")
#: File types an upload may have (the command line's files).
UPLOAD_SUFFIXES = (".npy", ".npz", ".csv")
#: Iterations per second a page may ask for (0: as fast as the fit goes).
MAX_SPEED = 100.0


@dataclass(frozen=True)
class Limits:
    """What one page may ask of the server.

    Attributes
    ----------
    max_samples : most samples of a data set (toy sets, subsets, uploads, edited points).
    max_clusters, max_iter, max_steps : most K, iterations and steps per iteration.
    max_upload_bytes : largest upload.
    max_fits : fits running at once on the server (all pages together).
    max_sessions : pages connected at once.
    resolution : grid points per axis of the 2-D decision regions.
    """

    max_samples: int = 20_000
    max_clusters: int = 50
    max_iter: int = 200
    max_steps: int = 500
    max_upload_bytes: int = 20 * 2**20
    max_fits: int = 2
    max_sessions: int = 16
    resolution: int = 150


@dataclass(frozen=True)
class RunParams:
    """One run's settings, as the page chose them (checked)."""

    n_clusters: int
    network: str = "auto"
    init: str = "k-means++"
    steps_per_iter: int = 10
    learning_rate: float | None = None
    seed: int = 0
    features: str = "pixels"
    max_iter: int = 30
    tol: float = 0.0
    speed: float = 10.0

    def config(self) -> Any:
        """The :class:`~neural_kmeans.app.experiments.NeuralConfig` of this run (CPU or CUDA
        as ``auto`` finds; no checkpoints)."""
        from neural_kmeans.app.experiments import NeuralConfig

        return NeuralConfig(
            network=self.network,
            init=self.init,
            max_iter=self.max_iter,
            steps_per_iter=self.steps_per_iter,
            learning_rate=self.learning_rate,
            tol=self.tol,
            n_init=1,  # one run, drawn iteration by iteration
            features=self.features,
        )


def _number(
    raw: Mapping[str, Any], name: str, label: str, kind: type, low: float, high: float
) -> Any:
    """``raw[name]`` as an int or a finite float in [low, high], or a one-line error."""
    value = raw.get(name)
    expected = "an integer" if kind is int else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageError(f"{label}: expected {expected}, got {value!r}")
    try:
        number = kind(str(value).strip())
    except ValueError:
        raise UsageError(f"{label}: expected {expected}, got {value!r}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise UsageError(
            f"{label}: expected {expected} between {low:g} and {high:g}, got {value!r}"
        )
    return number


def _choice(raw: Mapping[str, Any], name: str, label: str, choices: tuple[str, ...]) -> str:
    value = raw.get(name)
    if value not in choices:
        raise UsageError(f"{label}: choose one of {', '.join(choices)} (got {value!r})")
    return str(value)


def parse_run_params(raw: Any, limits: Limits) -> RunParams:
    """The run's parameters from the page's message, checked.

    Raises
    ------
    UsageError
        For the first bad value (named as on the page).
    """
    if not isinstance(raw, Mapping):
        raise UsageError("the run's parameters must be an object")
    unknown = sorted(set(raw) - set(RunParams.__dataclass_fields__))
    if unknown:
        raise UsageError(f"unknown parameter(s): {', '.join(map(str, unknown))}")
    rate = raw.get("learning_rate")
    learning_rate = None
    if rate not in (None, ""):
        learning_rate = _number(raw, "learning_rate", "learning rate", float, 1e-12, 10.0)
    return RunParams(
        n_clusters=_number(raw, "n_clusters", "K", int, 1, limits.max_clusters),
        network=_choice(raw, "network", "network", NETWORK_NAMES),
        init=_choice(raw, "init", "init", INIT_NAMES),
        steps_per_iter=_number(
            raw, "steps_per_iter", "steps per iteration", int, 1, limits.max_steps
        ),
        learning_rate=learning_rate,
        seed=_number(raw, "seed", "seed", int, 0, 2**32 - 1),
        features=_choice(raw, "features", "features", FEATURE_NAMES),
        max_iter=_number(raw, "max_iter", "iterations", int, 1, limits.max_iter),
        tol=_number(raw, "tol", "tolerance", float, 0.0, 1.0),
        speed=parse_speed(raw.get("speed")),
    )


def parse_speed(raw: Any) -> float:
    """A pace: iterations per second, 0 for as fast as the fit goes."""
    return _number(
        {"speed": raw}, "speed", "speed (iterations per second, 0: no limit)", float, 0.0, MAX_SPEED
    )


@dataclass(frozen=True)
class SourceSpec:
    """Which data a page asked for: a toy set (with its size, noise and seed), a named image
    set (with a subset size for MNIST-like sets), or its upload."""

    kind: str
    name: str
    n_samples: int | None = None
    noise: float | None = None
    seed: int = 0


def parse_source(raw: Any, limits: Limits, available: tuple[str, ...]) -> SourceSpec:
    """The data the page asked for, checked against what this server has.

    Raises
    ------
    UsageError
        For an unknown or unavailable set, or a size or noise out of range.
    """
    if not isinstance(raw, Mapping):
        raise UsageError("the data source must be an object")
    name = raw.get("name")
    if name not in available:
        raise UsageError(
            f"data set {name!r} is not available here; choose one of {', '.join(available)} "
            "or upload a .npy, .npz or .csv file"
        )
    n_samples = None
    if raw.get("n_samples") not in (None, "") and name != "digits":
        n_samples = _number(raw, "n_samples", "samples", int, 1, limits.max_samples)
    noise = None
    if name in ("moons", "circles") and raw.get("noise") not in (None, ""):
        noise = _number(raw, "noise", "noise", float, 1e-6, 10.0)
    seed = 0
    if raw.get("seed") not in (None, ""):
        seed = _number(raw, "seed", "data seed", int, 0, 2**32 - 1)
    kind = "toy" if name in TOY_SETS else "images"
    return SourceSpec(kind=kind, name=str(name), n_samples=n_samples, noise=noise, seed=seed)
