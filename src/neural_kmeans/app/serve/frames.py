"""What the page is sent at each iteration.

A :class:`Snapshot` keeps one iteration of one method (its centroids, clusters, 2-D
decision regions, history record and scores); :class:`Framer` takes them from the
loop's state and turns them into JSON frames, arrays as base64 bytes (uint8 clusters,
uint8 region grids, uint8 centroid images).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

from neural_kmeans.app.serve.sources import PlaygroundData
from neural_kmeans.app.traces import _network_labels
from neural_kmeans.core.metrics import evaluate

#: History entries sent with each frame (the rest stay on the server).
RECORD_KEYS = ("iteration", "loss", "changed", "inertia", "sizes", "seconds", "empty_repaired")


def b64(array: np.ndarray) -> str:
    """The bytes of ``array`` (C order), base64."""
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


@dataclass
class Snapshot:
    """One method's state after one iteration (iteration 0: the initial centroids).

    Attributes
    ----------
    iteration : int
    centroids : ndarray (K, d), input units
    labels : ndarray (n,) uint8 or None (None at iteration 0)
    regions : ndarray (ny, nx) uint8 or None (2-D data only)
    record : dict or None
        :data:`RECORD_KEYS` of the loop's history record, inertia in scaled units.
    scores : dict or None
        The five metrics on the samples of known class.
    """

    iteration: int
    centroids: np.ndarray
    labels: np.ndarray | None = None
    regions: np.ndarray | None = None
    record: dict[str, Any] | None = None
    scores: dict[str, float] | None = None


class Framer:
    """Snapshots of the loop's states, and the frames the page draws, for one data set."""

    def __init__(self, data: PlaygroundData, resolution: int) -> None:
        self.data = data
        self.scale = data.split.scale
        self.mesh: np.ndarray | None = None
        self.grid: dict[str, Any] | None = None
        if data.mode == "2d":
            x0, x1, y0, y1 = data.view
            gx = np.linspace(x0, x1, resolution)
            gy = np.linspace(y0, y1, resolution)
            mesh = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
            self.mesh = mesh.astype(np.float32)
            self.grid = {"nx": resolution, "ny": resolution, "x": gx, "y": gy}
        self.value_range = data.split.value_range() if data.mode == "images" else (0.0, 1.0)

    # ------------------------------------------------------------------ snapshots
    def initial(self, centroids: np.ndarray) -> Snapshot:
        return Snapshot(iteration=0, centroids=np.asarray(centroids, dtype=np.float64))

    def snapshot(self, state: Any) -> Snapshot:
        """The state of a loop callback (:class:`~neural_kmeans.core.loop.LoopState`)."""
        labels = state.labels.cpu().numpy().astype(np.uint8)
        regions = None
        if self.mesh is not None:
            ny, nx = self.grid["ny"], self.grid["nx"]
            regions = _network_labels(state.network, self.mesh).astype(np.uint8).reshape(ny, nx)
        record = {key: state.record[key] for key in RECORD_KEYS if key in state.record}
        record["inertia"] = float(record["inertia"]) * self.scale**2
        return Snapshot(
            iteration=int(state.iteration),
            centroids=np.asarray(state.cluster_centers, dtype=np.float64),
            labels=labels,
            regions=regions,
            record=record,
            scores=self.scores(labels),
        )

    def scores(self, labels: np.ndarray | None) -> dict[str, float] | None:
        """The metrics of ``labels`` on the samples of known class (None without any)."""
        mask = self.data.labelled
        if labels is None or mask is None:
            return None
        return evaluate(self.data.labels[mask], labels[mask])

    # ------------------------------------------------------------------ frames
    def images(self, centroids: np.ndarray) -> np.ndarray:
        """Centroids as uint8 images (K, h, w, 1 or 3), black to white over the data's range."""
        shape = self.data.image_shape
        channels, height, width = (1, *shape) if len(shape) == 2 else shape
        images = np.asarray(centroids, dtype=np.float64) * self.scale
        images = images.reshape(-1, channels, height, width)
        low, high = self.value_range
        images = np.clip((images - low) / (high - low if high > low else 1.0), 0.0, 1.0)
        if channels != 3:
            images = images.mean(axis=1, keepdims=True)
        return np.round(255 * images.transpose(0, 2, 3, 1)).astype(np.uint8)

    def encode(self, snapshot: Snapshot | None) -> dict[str, Any] | None:
        """One method's part of a frame."""
        if snapshot is None:
            return None
        part: dict[str, Any] = {
            "iteration": snapshot.iteration,
            "record": snapshot.record,
            "scores": snapshot.scores,
        }
        if self.data.mode == "images":
            part["images"] = b64(self.images(snapshot.centroids))
            return part
        centroids = self.data.project(snapshot.centroids)
        part["centroids"] = np.round(centroids, 5).tolist()
        part["labels"] = None if snapshot.labels is None else b64(snapshot.labels)
        part["regions"] = None if snapshot.regions is None else b64(snapshot.regions)
        return part

    def frame(self, run: int, neural: Snapshot, kmeans: Snapshot | None) -> dict[str, Any]:
        """The message of one iteration: neural-kmeans and K-means side by side."""
        return {
            "type": "frame",
            "run": run,
            "iteration": neural.iteration,
            "neural": self.encode(neural),
            "kmeans": self.encode(kmeans),
            "final": False,
        }

    def start(self, run: int, params: dict[str, Any], network: str) -> dict[str, Any]:
        """The message that opens a run: its settings and the region grid."""
        grid = None
        if self.grid is not None:
            grid = {"nx": self.grid["nx"], "ny": self.grid["ny"], "view": list(self.data.view)}
        return {
            "type": "start",
            "run": run,
            "params": params,
            "network": network,
            "grid": grid,
            "image_shape": None if self.data.image_shape is None else list(self.data.image_shape),
        }


def contingency(data: PlaygroundData, labels: np.ndarray) -> dict[str, Any] | None:
    """Classes x clusters counts on the samples of known class, the clusters ordered to put
    each class's best match on the diagonal (None without classes)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    mask = data.labelled
    if mask is None:
        return None
    y, clusters_of = data.labels[mask], labels[mask]
    classes = np.unique(y)
    clusters = np.unique(clusters_of)
    table = contingency_matrix(y, clusters_of)
    rows, cols = linear_sum_assignment(table, maximize=True)
    matched = [int(c) for _, c in sorted(zip(rows, cols, strict=True))]
    rest = sorted(set(range(len(clusters))) - set(matched), key=lambda c: table[:, c].argmax())
    order = matched + rest
    return {
        "classes": [int(c) for c in classes],
        "clusters": [int(clusters[c]) for c in order],
        "counts": table[:, order].tolist(),
    }
