"""What a page can take home from a finished run: ``results.json`` (the schema of
``neural-kmeans run``), the run's GIF (the 2-D panels side by side, or the centroid
grids) and the model file (``.nkm``, for ``neural-kmeans predict``)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from neural_kmeans.app import experiments as ex
from neural_kmeans.app.errors import UsageError
from neural_kmeans.app.serve.runner import NEURAL, FitRunner


def _finished(runner: FitRunner | None) -> FitRunner:
    if runner is None or runner.outcome != "done":
        raise UsageError("nothing to export yet: run the fit to its end (or stop it) first")
    return runner


def results_document(runner: FitRunner | None) -> dict[str, Any]:
    """The ``results.json`` document of the run, as ``neural-kmeans run`` writes it (the
    K-means baseline being Lloyd's algorithm from the same initial centroids)."""
    runner = _finished(runner)
    params, data = runner.params, runner.data
    settings = {
        **params.config().as_dict(),
        "network_resolved": runner.network,
        "seed": params.seed,
        "n_train": int(data.x.shape[0]),
        "n_test": None,
        "kmeans": {
            "algorithm": "lloyd",
            "init": "the initial centroids of neural-kmeans",
            "max_iter": params.max_iter,
            "tol": params.tol,
        },
        "data_dir": None,
        "threads": None,
        "processes": 1,
        "inertia_units": "samples scaled to [0, 1] (uint8 / 255); other data as is",
        "command": "neural-kmeans serve (playground)",
        "source": data.source,
        "scored_samples": None if data.labelled is None else int(data.labelled.sum()),
        "seconds": "wall time of fit, less the time spent drawing, pacing and paused",
        "stopped_by_user": runner.control.stopped,
    }
    # results.json names each method as the command line does (its network, or learned)
    runs = {(runner.network if name == NEURAL else name): run for name, run in runner.runs.items()}
    return ex.run_results(data.split, params.n_clusters, runs, settings)


def results_bytes(runner: FitRunner | None) -> bytes:
    return (json.dumps(results_document(runner), indent=2) + "\n").encode()


def model_bytes(runner: FitRunner | None) -> bytes:
    """The fitted model's ``.nkm`` file."""
    runner = _finished(runner)
    with tempfile.TemporaryDirectory(prefix="neural-kmeans-export-") as folder:
        path = Path(folder) / "model.nkm"
        runner.model.save(path)
        return path.read_bytes()


def gif_bytes(runner: FitRunner | None, fps: float = 4.0) -> bytes:
    """The run as an animated GIF (needs matplotlib)."""
    runner = _finished(runner)
    try:
        from neural_kmeans.app import animation, plotting
    except ImportError as error:
        raise UsageError(
            f"the GIF needs matplotlib ({error}): pip install 'neural-kmeans[plot]'"
        ) from None
    with tempfile.TemporaryDirectory(prefix="neural-kmeans-export-") as folder:
        path = Path(folder) / "run.gif"
        if runner.data.mode == "images":
            _centroid_gif(runner, plotting, Path(folder), path, fps)
        else:
            methods = [
                (f"neural-kmeans ({runner.network})", runner.neural, runner.model),
                ("K-means (Lloyd, same start)", runner.kmeans, runner.kmeans_model),
            ]
            trajectories = [_trajectory(runner, *method) for method in methods]
            title = f"{runner.data.split.name}, K={runner.params.n_clusters}"
            animation.animate_trajectories(
                trajectories, runner.data.points, path, fps=fps, title=title
            )
        return path.read_bytes()


def _trajectory(runner: FitRunner, title: str, snapshots: list[Any], model: Any) -> Any:
    """The snapshots of one method as the animation's Trajectory."""
    from neural_kmeans.app.traces import Trajectory

    data = runner.data
    grid = runner.framer.grid
    if data.mode == "rows":
        title += ", PCA view"
    return Trajectory(
        title=title,
        centroids=[data.project(s.centroids) for s in snapshots],
        labels=[None if s.labels is None else s.labels.astype(np.int64) for s in snapshots],
        regions=[s.regions for s in snapshots],
        records=[s.record for s in snapshots],
        grid_x=grid["x"] if grid else np.array(data.view[:2]),
        grid_y=grid["y"] if grid else np.array(data.view[2:]),
        converged=bool(model.converged_),
    )


def _centroid_gif(runner: FitRunner, plotting: Any, folder: Path, path: Path, fps: float) -> None:
    """The centroid grid of every iteration, as ``neural-kmeans run`` draws it."""
    data = runner.data
    snapshots = runner.neural
    sizes = [None if s.record is None else s.record["sizes"] for s in snapshots]
    repaired = [None if s.record is None else s.record.get("empty_repaired") for s in snapshots]
    title = f"{data.split.name}: neural-kmeans ({runner.network})"
    titles = [f"{title}: initial centroids"] + [
        f"{title}: iteration {s.iteration} ({100 * s.record['changed']:.1f}% changed)"
        for s in snapshots[1:]
    ]
    paths = plotting.save_centroid_grids(
        [s.centroids * data.split.scale for s in snapshots],
        data.image_shape,
        folder / "frames",
        titles=titles,
        sizes=sizes,
        repaired=repaired,
        value_range=data.split.value_range(),
    )
    plotting.save_gif(paths, path, duration_ms=int(1000 / fps))


#: Export names: their file names, media types and makers.
EXPORTS = {
    "results": ("results.json", "application/json", results_bytes),
    "gif": ("run.gif", "image/gif", gif_bytes),
    "model": ("model.nkm", "application/octet-stream", model_bytes),
}
