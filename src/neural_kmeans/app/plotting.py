"""Static figures: centroid grids and their GIF, contingency tables, histories, sweeps,
and the sets of figures the `run` and `reproduce` commands write.

Figures are drawn on :class:`matplotlib.figure.Figure` objects and written with
``savefig``: no pyplot, no global backend chosen or changed, so importing this module
leaves the user's matplotlib as it was. The rest of the package imports it only
when it draws, so it works without matplotlib (``pip install neural-kmeans[plot]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image
from scipy.optimize import linear_sum_assignment
from sklearn.metrics.cluster import contingency_matrix

from neural_kmeans.app.data import DataSplit
from neural_kmeans.app.experiments import KMEANS, MethodRun
from neural_kmeans.app.report import sweep_stat
from neural_kmeans.core.metrics import METRIC_NAMES

__all__ = [
    "centroid_figures",
    "cluster_colors",
    "grid_shape",
    "plot_clusters_2d",
    "plot_confusion",
    "plot_history",
    "plot_sweep",
    "reproduce_figures",
    "run_figures",
    "save_centroid_grids",
    "save_gif",
]

DPI = 100
_METRIC_LABELS = {
    "acc": "accuracy",
    "nmi": "NMI",
    "ari": "adjusted Rand index",
    "rand": "Rand index",
    "purity": "purity",
    "inertia": "inertia (scaled units)",
    "silhouette": "silhouette",
    "stability": "stability (ARI between seeds)",
}


def grid_shape(n_clusters: int) -> tuple[int, int]:
    """Rows and columns of a centroid grid: 5 columns up to 25 clusters (2x5 for K=10)."""
    ncols = min(n_clusters, 5) if n_clusters <= 25 else math.ceil(math.sqrt(n_clusters))
    return math.ceil(n_clusters / ncols), ncols


def cluster_colors(n_clusters: int) -> np.ndarray:
    """K distinct RGBA colours (tab10, tab20, then evenly spaced hues)."""
    if n_clusters <= 10:
        return colormaps["tab10"](np.arange(n_clusters))
    if n_clusters <= 20:
        return colormaps["tab20"](np.arange(n_clusters))
    return colormaps["hsv"](np.linspace(0, 1, n_clusters, endpoint=False))


def _as_images(
    centroids: np.ndarray, image_shape: tuple[int, ...], value_range: tuple[float, float]
) -> np.ndarray:
    """(K, features) -> (K, h, w) greyscale or (K, h, w, 3) colour, in [0, 1]."""
    shape = tuple(image_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    channels, height, width = shape
    images = np.asarray(centroids, dtype=np.float64).reshape(-1, channels, height, width)
    low, high = value_range
    images = np.clip((images - low) / (high - low if high > low else 1.0), 0.0, 1.0)
    if channels == 3:
        return images.transpose(0, 2, 3, 1)
    return images.mean(axis=1)


def save_centroid_grids(
    frames: Sequence[np.ndarray],
    image_shape: tuple[int, ...],
    out_dir: str | Path,
    *,
    titles: Sequence[str] | None = None,
    sizes: Sequence[Sequence[int] | None] | None = None,
    repaired: Sequence[Sequence[int] | None] | None = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    prefix: str = "iter_",
) -> list[Path]:
    """Draw each frame's K centroids as a grid of images: ``out_dir/{prefix}000.png``, ...

    ``frames``: the (K, n_features) centroids per iteration (frame 0: the initial ones),
    each of ``image_shape`` ((h, w) or (c, h, w)); ``titles``: each frame's title (default
    "iteration i"); ``sizes``: the cluster sizes per frame, shown above each centroid;
    ``repaired``: per frame, the clusters that were empty and re-seeded on a far sample;
    ``value_range``: the values drawn black and white. Returns the PNG files, in order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_clusters = int(np.asarray(frames[0]).shape[0])
    nrows, ncols = grid_shape(n_clusters)
    first = _as_images(frames[0], image_shape, value_range)
    height_px, width_px = first.shape[1:3]
    # Explicit layout (inches): every panel's title has its own room above its image.
    panel_w = 1.2
    panel_h = panel_w * height_px / width_px
    gap, title_h, header = 0.1, 0.22, 0.45
    row_h = panel_h + title_h + gap
    width = ncols * panel_w + (ncols + 1) * gap
    height = header + nrows * row_h + gap
    fig = Figure(figsize=(width, height))
    pictures = []
    for k in range(n_clusters):
        row, col = divmod(k, ncols)
        left = gap + col * (panel_w + gap)
        bottom = height - header - row * row_h - title_h - panel_h
        ax = fig.add_axes((left / width, bottom / height, panel_w / width, panel_h / height))
        ax.set_xticks([])
        ax.set_yticks([])
        pictures.append(
            ax.imshow(
                first[k], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto"
            )
        )
    heading = fig.suptitle("", y=1 - 0.1 / height, va="top")
    paths = []
    for number, centroids in enumerate(frames):
        images = _as_images(centroids, image_shape, value_range)
        frame_sizes = sizes[number] if sizes is not None else None
        moved = set(repaired[number] or ()) if repaired is not None else set()
        for k, picture in enumerate(pictures):
            picture.set_data(images[k])
            label = f"{k}" if frame_sizes is None else f"{k}: n={int(frame_sizes[k])}"
            if k in moved:
                label = f"{k}: empty, re-seeded"
            picture.axes.set_title(label, fontsize=8, pad=2)
        heading.set_text(titles[number] if titles is not None else f"iteration {number}")
        path = out_dir / f"{prefix}{number:03d}.png"
        fig.savefig(path, dpi=DPI)
        paths.append(path)
    return paths


def save_gif(
    frames: Sequence[str | Path], path: str | Path, *, duration_ms: int = 500, hold_ms: int = 1500
) -> Path:
    """Animate PNG frames of equal size into a looping GIF at ``path`` (one GIF frame per
    PNG), each shown ``duration_ms``, the last one held ``hold_ms``."""
    images = []
    for frame in frames:
        with Image.open(frame) as image:
            images.append(image.convert("RGB").quantize(colors=64, dither=Image.Dither.NONE))
    durations = [duration_ms] * (len(images) - 1) + [hold_ms]
    path = Path(path)
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=durations,
        loop=0,
        disposal=1,
    )
    return path


def _save(fig: Any, path: str | Path, title: str = "") -> Path:
    """Give ``fig`` its ``title`` (if any), lay it out and write it to ``path``."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path


def matching_colors(reference: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """For each cluster of ``labels``, the index of the colour of the ``reference``
    cluster it overlaps most (one to one, Hungarian); unmatched clusters keep theirs."""
    table = np.zeros((n_clusters, n_clusters))
    np.add.at(table, (labels, np.clip(reference, 0, n_clusters - 1)), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    order = np.arange(n_clusters)
    order[rows] = cols
    return order


#: One colour per method, the same in every figure.
METHOD_COLORS = {
    "kmeans": "C0", "cnn": "C1", "mlp": "C2", "linear": "C3", "nearest-centroid": "C4",
    "learned": "C5", "cnn-1-step": "C6", "cnn-10-steps": "C1",
}  # fmt: skip


def _color(name: str) -> str | None:
    """The colour of a method (or a label that starts with its name)."""
    key = name.split()[0].lower().rstrip(",")
    if key == "k-means":
        key = "kmeans"
    return METHOD_COLORS.get(key)


def _ordered_table(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Contingency table (classes x clusters), clusters ordered to put matches on the diagonal."""
    clusters = np.unique(y_pred)
    table = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    matched = [int(c) for _, c in sorted(zip(rows, cols, strict=True))]
    rest = sorted(set(range(len(clusters))) - set(matched), key=lambda c: table[:, c].argmax())
    order = matched + rest
    return table[:, order], [int(clusters[c]) for c in order]


def plot_confusion(
    y_true: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Contingency tables of the clusters of each method (``predictions``: name to labels)
    against the classes ``y_true``.

    Clusters are reordered so that the best one-to-one matching (Hungarian) lies on
    the diagonal; cell counts are written when the table is small.
    """
    y_true = np.asarray(y_true)
    classes = np.unique(y_true)
    n = len(predictions)
    widest = max(np.unique(p).size for p in predictions.values())
    width = max(4.0, 0.5 * widest + 2.4)
    height = max(3.4, 0.42 * classes.size + 1.6)
    fig = Figure(figsize=(width * n, height))
    axes = fig.subplots(1, n, squeeze=False)
    for ax, (name, y_pred) in zip(axes.flat, predictions.items(), strict=True):
        table, clusters = _ordered_table(y_true, np.asarray(y_pred))
        image = ax.imshow(table, cmap="Blues", aspect="auto", interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="samples")
        ax.set_xticks(range(len(clusters)), [str(c) for c in clusters], fontsize=8)
        ax.set_yticks(range(classes.size), [str(c) for c in classes], fontsize=8)
        ax.set_xlabel("cluster (reordered: best match on the diagonal)")
        ax.set_ylabel("class")
        ax.set_title(name, fontsize=11)
        if table.size <= 400:
            top = table.max() or 1
            size = 8 if table.shape[1] <= 12 else 6.5
            for (i, j), count in np.ndenumerate(table):
                color = "white" if count > 0.6 * top else "black"
                ax.text(j, i, str(count), ha="center", va="center", fontsize=size, color=color)
    return _save(fig, path, title)


def plot_history(
    histories: Mapping[str, Sequence[Mapping]],
    path: str | Path,
    *,
    inertia_scale: float = 1.0,
    reference_inertia: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Loss, fraction of samples that changed cluster, and inertia per iteration of each
    ``histories`` (label to the estimator's ``history_``).

    ``inertia_scale`` multiplies the recorded inertia (e.g. 1/255² to put uint8 data in
    [0, 1] units); ``reference_inertia``: final inertias of other methods (K-means),
    drawn as dashed lines.
    """
    fig = history_figure(
        histories, inertia_scale=inertia_scale, reference_inertia=reference_inertia
    )
    return _save(fig, path, title)


def history_figure(
    histories: Mapping[str, Sequence[Mapping]],
    *,
    inertia_scale: float = 1.0,
    reference_inertia: Mapping[str, float] | None = None,
) -> Any:
    """The figure of :func:`plot_history`, not yet saved. A history of one iteration (the
    learned mode's default) is one point per panel: it is labelled with its value, and
    the iteration axis has the one integer tick."""
    fig = Figure(figsize=(11, 3.3))
    axes = fig.subplots(1, 3)
    panels = (
        ("loss", "training loss (cross-entropy)", 1.0),
        ("changed", "fraction of samples that changed", 1.0),
        ("inertia", "inertia", inertia_scale),
    )
    last = max((len(history) for history in histories.values()), default=1)
    for ax, (key, label, factor) in zip(axes, panels, strict=True):
        for name, history in histories.items():
            iterations = [record["iteration"] for record in history]
            values = [record[key] * factor for record in history]
            ax.plot(iterations, values, marker="o", markersize=4, label=name, color=_color(name))
            if len(values) == 1:
                ax.annotate(
                    f"{values[0]:.4g}",
                    (iterations[0], values[0]),
                    xytext=(7, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color=_color(name),
                )
        if key == "inertia" and reference_inertia:
            for name, value in reference_inertia.items():
                ax.axhline(value, linestyle="--", color=_color(name), label=name)
        ax.set_xlabel("iteration")
        ax.set_xlim(0.5, last + 0.5)  # one iteration too: a point in the middle, one tick
        # min_n_ticks=1: with one iteration, the tick 1 alone (not fractions of it)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8, min_n_ticks=1))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useOffset=False)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    _, labels = axes[-1].get_legend_handles_labels()
    if len(labels) > 1:
        axes[-1].legend(fontsize=8)
    return fig


def plot_sweep(
    sweep: Mapping,
    metric: str,
    path: str | Path,
    *,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """One ``metric`` (of :func:`~neural_kmeans.app.report.sweep_metrics`) against K for
    every method of ``sweep``, :func:`~neural_kmeans.app.experiments.sweep_clusters`'s
    document (each method in its own colour, the same in every figure; ``labels``: their
    display names)."""
    split = sweep["score_split"]
    fig = Figure(figsize=(5.4, 3.8))
    ax = fig.subplots()
    for method, points in sweep["methods"].items():
        ks = [point["n_clusters"] for point in points]
        stats = [sweep_stat(point, metric, split) for point in points]
        means = [math.nan if stat is None else stat["mean"] for stat in stats]
        stds = [0.0 if stat is None else stat["std"] for stat in stats]
        name = (labels or {}).get(method, method)
        ax.errorbar(
            ks, means, yerr=stds if any(stds) else None, marker="o", capsize=3, label=name,
            color=_color(method),
        )  # fmt: skip
    where = "" if metric in ("inertia", "silhouette", "stability") else f" ({split})"
    ax.set_xlabel("number of clusters K")
    ax.set_ylabel(f"{_METRIC_LABELS.get(metric, metric)}{where}")
    ax.set_xticks(list(sweep["clusters"]))
    ax.set_title(f"{sweep['dataset']}: {_METRIC_LABELS.get(metric, metric)} against K", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_clusters_2d(
    x: np.ndarray,
    predictions: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Scatter plots of the (n, 2) samples ``x`` coloured by cluster, with the centroids:
    one panel per method of ``predictions`` (name to (labels (n,), centroids (K, 2))).
    """
    x = np.asarray(x)
    n = len(predictions)
    fig = Figure(figsize=(4.2 * n, 4.0))
    axes = fig.subplots(1, n, squeeze=False)
    first = np.asarray(next(iter(predictions.values()))[0])
    for ax, (name, (labels, centers)) in zip(axes.flat, predictions.items(), strict=True):
        # the same blob in the same colour in every panel: each panel's clusters take
        # the colours of the first panel's clusters they overlap most (Hungarian)
        colors = cluster_colors(len(centers))[
            matching_colors(first, np.asarray(labels), len(centers))
        ]
        ax.scatter(x[:, 0], x[:, 1], c=colors[np.asarray(labels)], s=6, linewidths=0)
        ax.scatter(centers[:, 0], centers[:, 1], c=colors, s=120, marker="*", edgecolors="black")
        ax.set_title(name, fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
    return _save(fig, path, title)


# --------------------------------------------------------------------------- command figures


def centroid_figures(
    run: MethodRun,
    data: DataSplit,
    out: Path,
    folder: str,
    title: str,
) -> list[Path]:
    """Centroid grids of every iteration of a neural-kmeans ``run`` fitted with
    ``record_centroids=True`` on the images of ``data``, and their GIF.

    Writes ``out/folder/iter_000.png`` (the initial centroids) ... and ``out/folder.gif``
    (frames an earlier run left there are deleted first), each frame's title starting
    with ``title``; returns the PNG frames, then the GIF.
    """
    model = run.model
    scale = data.scale
    frames = [np.asarray(model.initial_centers_) * scale]
    frames += [np.asarray(record["centroids"]) * scale for record in model.history_]
    sizes = [None] + [record["sizes"] for record in model.history_]
    repaired = [None] + [record.get("empty_repaired") for record in model.history_]
    titles = [f"{title}: initial centroids"] + [
        f"{title}: iteration {record['iteration']} ({100 * record['changed']:.1f}% changed)"
        for record in model.history_
    ]
    for old in (out / folder).glob("iter_*.png"):  # an earlier run's frames
        old.unlink()
    paths = save_centroid_grids(
        frames,
        model.image_shape_,
        out / folder,
        titles=titles,
        sizes=sizes,
        repaired=repaired,
        value_range=data.value_range(),
    )
    gif = save_gif(paths, out / f"{folder}.gif")
    return [*paths, gif]


def _score_labels(data: DataSplit, run: MethodRun) -> tuple[np.ndarray | None, np.ndarray]:
    if data.x_test is not None and run.test_labels is not None:
        return data.y_test, run.test_labels
    return data.y_train, run.train_labels


def run_figures(
    data: DataSplit, runs: Mapping[str, MethodRun], out: Path, neural_name: str
) -> list[str]:
    """The figures of ``neural-kmeans run``; returns what was written, for the summary.

    ``centroids/`` and ``centroids.gif`` for images, ``clusters.png`` for 2-D rows,
    ``history.png``, and ``confusion.png`` when there are labels (on test when there is
    a test split).
    """
    written = []
    neural = runs[neural_name]
    model = neural.model
    if model.image_shape_ is not None:
        files = centroid_figures(neural, data, out, "centroids", data.name)
        written += [f"centroids/ ({len(files) - 1} frames)", files[-1].name]
    elif data.n_features == 2:
        predictions = {
            name: (run.train_labels, np.asarray(run.model.cluster_centers_) * data.scale)
            for name, run in runs.items()
        }
        path = plot_clusters_2d(
            data.rows("train"), predictions, out / "clusters.png", title=data.name
        )
        written.append(path.name)
    reference = {"kmeans (final)": runs[KMEANS].inertia} if KMEANS in runs else None
    path = plot_history(
        {neural_name: model.history_},
        out / "history.png",
        inertia_scale=data.scale**2,
        reference_inertia=reference,
        title=f"{data.name}, K={neural.n_clusters}",
    )
    written.append(path.name)
    y_true, _ = _score_labels(data, neural)
    if y_true is not None:
        split = "test" if data.x_test is not None else data.fit_split
        predictions = {name: _score_labels(data, run)[1] for name, run in runs.items()}
        path = plot_confusion(
            y_true, predictions, out / "confusion.png", title=f"{data.name}, {split} split"
        )
        written.append(path.name)
    return written


def reproduce_figures(
    data: DataSplit,
    first: Mapping[str, MethodRun],
    document: Mapping[str, Any],
    out: Path,
) -> dict[str, str]:
    """The figures of ``neural-kmeans reproduce``, from the first seed's runs.

    Returns
    -------
    dict of str to str
        Paths relative to ``out``, under the keys
        :func:`neural_kmeans.app.report.reproduce_report` reads.
    """
    figures: dict[str, str] = {}
    ten, one = first["cnn-10-steps"], first["cnn-1-step"]
    for run, folder, steps in ((ten, "centroids", "10 steps"), (one, "centroids-1-step", "1 step")):
        files = centroid_figures(run, data, out, folder, f"CNN, {steps}/iteration")
        key = folder.replace("-", "_")
        figures[key] = files[-2].relative_to(out).as_posix()
        figures[f"{key}_gif"] = files[-1].relative_to(out).as_posix()
    plot_history(
        {"CNN, 1 step": one.model.history_, "CNN, 10 steps": ten.model.history_},
        out / "history.png",
        inertia_scale=data.scale**2,
        reference_inertia={"K-means (final)": first[KMEANS].inertia},
        title=f"{data.name}, K={ten.n_clusters}, seed {ten.seed}",
    )
    figures["history"] = "history.png"
    plot_confusion(
        data.y_test,
        {
            "K-means": first[KMEANS].test_labels,
            "CNN, 1 step": one.test_labels,
            "CNN, 10 steps": ten.test_labels,
        },
        out / "confusion.png",
        title=f"{data.name} test set, seed {ten.seed}",
    )
    figures["confusion"] = "confusion.png"
    if document.get("sweep"):
        labels = {KMEANS: "K-means", "cnn": "CNN, 10 steps"}
        for metric in METRIC_NAMES:
            name = f"sweep_{metric}.png"
            plot_sweep(document["sweep"], metric, out / name, labels=labels)
            figures[f"sweep_{metric}"] = name
    return figures
