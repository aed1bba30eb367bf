"""Figures and animations from synthetic inputs: files are valid images with the right frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from neural_kmeans.app import animation, plotting
from neural_kmeans.app.experiments import NeuralConfig
from neural_kmeans.app.traces import Trajectory, trace_2d


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def gif_frames(path: Path) -> int:
    with Image.open(path) as image:
        assert image.format == "GIF"
        return image.n_frames


@pytest.mark.parametrize(
    ("k", "shape"),
    [(1, (1, 1)), (2, (1, 2)), (5, (1, 5)), (10, (2, 5)), (12, (3, 5)), (20, (4, 5))],
)
def test_grid_shape(k: int, shape: tuple[int, int]) -> None:
    assert plotting.grid_shape(k) == shape
    rows, cols = plotting.grid_shape(40)
    assert rows * cols >= 40


def test_cluster_colors_are_distinct() -> None:
    for k in (3, 10, 15, 30):
        colors = plotting.cluster_colors(k)
        assert colors.shape == (k, 4)
        assert len({tuple(c) for c in colors}) == k


@pytest.mark.parametrize("image_shape", [(8, 8), (3, 8, 8)])
def test_centroid_grids_and_gif(tmp_path: Path, image_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    n_features = int(np.prod(image_shape))
    frames = [rng.random((10, n_features)) for _ in range(4)]
    sizes = [None, *([list(range(10))] * 3)]
    paths = plotting.save_centroid_grids(
        frames, image_shape, tmp_path / "grid", sizes=sizes, repaired=[None, [3], None, None]
    )
    assert [p.name for p in paths] == [f"iter_{i:03d}.png" for i in range(4)]
    sizes_px = {png_size(p) for p in paths}
    assert len(sizes_px) == 1  # every frame the same size, as a GIF needs
    gif = plotting.save_gif(paths, tmp_path / "grid.gif")
    assert gif_frames(gif) == 4


def test_centroid_grid_values_outside_the_range_are_clipped(tmp_path: Path) -> None:
    frames = [np.full((2, 16), 300.0), np.full((2, 16), -5.0)]
    paths = plotting.save_centroid_grids(frames, (4, 4), tmp_path, value_range=(0.0, 255.0))
    assert len(paths) == 2


def test_confusion_with_more_clusters_than_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    predictions = {"a": rng.integers(0, 5, 200), "b": y.copy()}
    path = plotting.plot_confusion(y, predictions, tmp_path / "c.png", title="t")
    width, height = png_size(path)
    assert width > height


def test_ordered_table_puts_the_matching_on_the_diagonal() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    clusters = np.array([2, 2, 0, 0, 1, 1])
    table, order = plotting._ordered_table(y, clusters)
    assert order == [2, 0, 1]
    np.testing.assert_array_equal(np.diag(table), [2, 2, 2])


def test_history_and_sweep_and_scatter(tmp_path: Path) -> None:
    history = [
        {"iteration": i, "loss": 2.0 / i, "changed": 1.0 / i, "inertia": 100.0 - i}
        for i in range(1, 6)
    ]
    plotting.plot_history(
        {"a": history, "b": history[:3]},
        tmp_path / "h.png",
        inertia_scale=0.5,
        reference_inertia={"kmeans": 40.0},
    )
    png_size(tmp_path / "h.png")
    summary = {"mean": 0.5, "std": 0.1}
    point = {"summary": {"test": dict.fromkeys(("acc", "rand"), summary), "train": None}}
    sweep = {
        "dataset": "toy",
        "score_split": "test",
        "clusters": [2, 5],
        "methods": {
            "kmeans": [{**point, "n_clusters": 2}, {**point, "n_clusters": 5}],
            "neural-kmeans": [{**point, "n_clusters": 2}, {**point, "n_clusters": 5}],
        },
    }
    plotting.plot_sweep(sweep, "rand", tmp_path / "s.png", labels={"kmeans": "K-means"})
    png_size(tmp_path / "s.png")
    x = np.random.default_rng(0).normal(size=(50, 2))
    centers = np.array([[0.0, 0.0], [1.0, 1.0]])
    plotting.plot_clusters_2d(x, {"m": (np.arange(50) % 2, centers)}, tmp_path / "p.png")
    png_size(tmp_path / "p.png")


def test_history_of_one_iteration_has_integer_ticks_and_values() -> None:
    """The learned mode's one iteration: the tick 1 alone on every panel (no run-together
    fractions of an iteration), and each lone point labelled with its value."""
    history = [{"iteration": 1, "loss": 0.0254, "changed": 0.0078, "inertia": 4990.65}]
    fig = plotting.history_figure({"learned": history}, reference_inertia={"kmeans": 4575.0})
    for ax, value in zip(fig.axes, ("0.0254", "0.0078", "4991"), strict=True):
        ticks = [t for t in ax.get_xticks() if 0.5 <= t <= 1.5]
        assert ticks == [1.0], ax.get_xticks()
        assert [text.get_text() for text in ax.texts] == [value]
    longer = [{**history[0], "iteration": i} for i in range(1, 4)]
    fig = plotting.history_figure({"pixels": longer})
    assert all(not ax.texts for ax in fig.axes)  # points of a curve are not labelled


def synthetic_trajectory(n_iter: int, n: int = 30, k: int = 3) -> Trajectory:
    rng = np.random.default_rng(n_iter)
    gx, gy = np.linspace(-1, 1, 20), np.linspace(-1, 1, 15)
    return Trajectory(
        title=f"{n_iter} iterations",
        centroids=[rng.normal(size=(k, 2)) for _ in range(n_iter + 1)],
        labels=[None] + [rng.integers(0, k, n) for _ in range(n_iter)],
        regions=[None] + [rng.integers(0, k, (gy.size, gx.size)) for _ in range(n_iter)],
        records=[None]
        + [{"iteration": i, "changed": 0.1, "inertia": 5.0} for i in range(1, n_iter + 1)],
        grid_x=gx,
        grid_y=gy,
        converged=True,
    )


def test_animation_holds_the_shorter_trajectory(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(30, 2))
    short, long = synthetic_trajectory(2), synthetic_trajectory(4)
    assert animation.n_frames([short, long]) == 5
    path = animation.animate_trajectories([short, long], x, tmp_path / "a.gif", fps=5)
    assert gif_frames(path) == 5


def test_can_write() -> None:
    assert animation.can_write("x.gif") == (True, "")
    ok, reason = animation.can_write("x.png")
    assert not ok and ".gif or .mp4" in reason
    with pytest.raises(ValueError, match="gif"):
        animation.animate_trajectories([synthetic_trajectory(1)], np.zeros((30, 2)), "x.avi")


def test_trace_2d_records_every_iteration() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.2, (40, 2)), rng.normal(2, 0.2, (40, 2))])
    config = NeuralConfig(network="mlp", max_iter=3)
    trajectory, model = trace_2d(x, 2, 0, config, resolution=12)
    assert trajectory.n_iter == model.n_iter_
    assert len(trajectory.labels) == len(trajectory.regions) == model.n_iter_ + 1
    assert trajectory.labels[0] is None and trajectory.regions[0] is None
    np.testing.assert_array_equal(trajectory.labels[-1], model.labels_)
    assert trajectory.regions[-1].shape == (12, 12)
    np.testing.assert_allclose(trajectory.centroids[-1], model.cluster_centers_, rtol=1e-5)
    # K-means from the same start: the nearest-centroid network, exact Lloyd
    lloyd, _ = trace_2d(
        x,
        2,
        0,
        NeuralConfig(network="nearest-centroid", max_iter=10),
        resolution=12,
        init=model.initial_centers_,
    )
    np.testing.assert_allclose(lloyd.centroids[0], model.initial_centers_)
    assert lloyd.converged
