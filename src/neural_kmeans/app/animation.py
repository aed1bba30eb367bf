"""The 2-D illustration: the network's decision regions, clusters and centroids per iteration.

Renders :class:`neural_kmeans.app.experiments.Trajectory` objects side by side with
matplotlib's animation writers: Pillow for GIF, ffmpeg for MP4.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import animation
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from neural_kmeans.app.plotting import cluster_colors
from neural_kmeans.app.traces import Trajectory

__all__ = ["FORMATS", "animate_trajectories", "can_write", "n_frames"]

#: File endings the animation can be written as, and the writer each needs.
FORMATS = {".gif": "pillow", ".mp4": "ffmpeg"}


def can_write(path: str | Path) -> tuple[bool, str]:
    """Whether an animation can be written at ``path``, and why not (empty when it can)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        return False, f"cannot write {str(path)!r}: the file name must end in .gif or .mp4"
    if not animation.writers.is_available(FORMATS[suffix]):
        return False, (
            f"cannot write {str(path)!r}: {FORMATS[suffix]} is not available; "
            "install it or write a .gif"
        )
    return True, ""


def n_frames(trajectories: Sequence[Trajectory]) -> int:
    """Frames of the animation: the longest trajectory's iterations + 1."""
    return max(t.n_iter for t in trajectories) + 1


class _Panel:
    """The artists of one trajectory's axes, updated frame by frame."""

    def __init__(self, ax: Axes, trajectory: Trajectory, x: np.ndarray) -> None:
        self.trajectory = trajectory
        n_clusters = trajectory.centroids[0].shape[0]
        self.colors = cluster_colors(n_clusters)
        light = self.colors.copy()
        light[:, :3] = 1.0 - 0.3 * (1.0 - light[:, :3])
        gx, gy = trajectory.grid_x, trajectory.grid_y
        self.regions = ax.imshow(
            np.zeros((gy.size, gx.size)),
            extent=(gx[0], gx[-1], gy[0], gy[-1]),
            origin="lower",
            cmap=ListedColormap(light),
            vmin=-0.5,
            vmax=n_clusters - 0.5,
            interpolation="nearest",
            aspect="auto",
        )
        self.samples = ax.scatter(x[:, 0], x[:, 1], s=7, c="0.45", linewidths=0, zorder=2)
        self.trails = [
            ax.plot([], [], color="black", linewidth=1.0, alpha=0.6, zorder=3)[0]
            for _ in range(n_clusters)
        ]
        start = trajectory.centroids[0]
        self.centroids = ax.scatter(
            start[:, 0],
            start[:, 1],
            s=190,
            marker="*",
            c=self.colors,
            edgecolors="black",
            linewidths=1.0,
            zorder=4,
        )
        ax.set_xlim(gx[0], gx[-1])
        ax.set_ylim(gy[0], gy[-1])
        ax.set_xticks([])
        ax.set_yticks([])
        self.title = ax.set_title(trajectory.title, fontsize=10)
        self.caption = ax.text(
            0.02,
            0.02,
            "",
            transform=ax.transAxes,
            fontsize=8,
            zorder=5,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )

    def update(self, frame: int) -> None:
        t = self.trajectory
        i = min(frame, t.n_iter)
        regions = t.regions[i]
        self.regions.set_visible(regions is not None)
        if regions is not None:
            self.regions.set_data(regions)
        labels = t.labels[i]
        self.samples.set_facecolors("0.45" if labels is None else self.colors[labels])
        path = np.stack(t.centroids[: i + 1])  # (i + 1, K, 2)
        for k, trail in enumerate(self.trails):
            trail.set_data(path[:, k, 0], path[:, k, 1])
        self.centroids.set_offsets(t.centroids[i])
        record = t.records[i]
        if record is None:
            text = "initial centroids"
        else:
            text = (
                f"iteration {i}: changed {100 * record['changed']:.1f}%, "
                f"inertia {record['inertia']:.4g}"
            )
            if i == t.n_iter and t.converged:
                text += " (converged)"
        self.caption.set_text(text)


def animate_trajectories(
    trajectories: Sequence[Trajectory],
    x: np.ndarray,
    path: str | Path,
    *,
    fps: float = 2.0,
    title: str = "",
    dpi: int = 90,
) -> Path:
    """Write the animation of one or more trajectories (one panel each, e.g. neural-kmeans
    and K-means) on the (n, 2) samples ``x`` side by side, to a ``.gif`` (Pillow) or
    ``.mp4`` (ffmpeg) at ``path``, its title followed by the iteration number.

    Frame 0 shows the initial centroids; frame i the state after iteration i. A
    trajectory that ended earlier than the others holds its last frame.
    """
    path = Path(path)
    ok, reason = can_write(path)
    if not ok:
        raise ValueError(reason)
    x = np.asarray(x)
    count = n_frames(trajectories)
    fig = Figure(figsize=(4.6 * len(trajectories), 4.8))
    axes = fig.subplots(1, len(trajectories), squeeze=False)
    panels = [_Panel(ax, t, x) for ax, t in zip(axes.flat, trajectories, strict=True)]
    heading = fig.suptitle("")
    fig.tight_layout(rect=(0, 0, 1, 0.94))

    def update(frame: int) -> list:
        for panel in panels:
            panel.update(frame)
        heading.set_text(f"{title}  —  iteration {frame}" if title else f"iteration {frame}")
        return []

    movie = animation.FuncAnimation(
        fig, update, frames=count, init_func=lambda: [], blit=False, cache_frame_data=False
    )
    writer = animation.writers[FORMATS[path.suffix.lower()]](fps=fps)
    movie.save(path, writer=writer, dpi=dpi)
    return path
