"""Markdown reports: the comparison table and the reproduction of the seed notebook.

Plain text only (no matplotlib): figures are linked by the relative paths given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from neural_kmeans.core.metrics import METRIC_NAMES

__all__ = ["compare_table", "mean_std", "reproduce_report", "sweep_stat", "sweep_table"]

#: Column headers: the metrics' own names, as in every output of the command line.
_HEADERS = {m: m for m in (*METRIC_NAMES, "inertia", "silhouette", "stability")}
_VARIANT_LABELS = {
    "kmeans": "K-means (scikit-learn)",
    "cnn-1-step": "CNN, 1 Adam step / iteration (the notebook's code)",
    "cnn-10-steps": "CNN, 10 Adam steps / iteration (what the notebook's figures reflect)",
}


def mean_std(stat: Mapping[str, float] | None, digits: int = 3) -> str:
    """``"0.612 ± 0.034"`` (just the mean for a single run), or ``"—"`` for None."""
    if stat is None:
        return "—"
    if stat.get("std", 0.0) == 0.0:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def compare_table(document: Mapping[str, Any], split: str | None = None) -> str:
    """Markdown table of :func:`~neural_kmeans.app.experiments.compare_methods`'s document.

    One row per method: every metric and the fit's wall seconds, mean ± standard
    deviation over the seeds, on ``split`` (default: test when there is one).
    """
    split = split or document["score_split"]
    header = ["method", *(_HEADERS[m] for m in METRIC_NAMES), "seconds", "iterations"]
    rows = []
    for method, entry in document["methods"].items():
        summary = entry["summary"]
        scores = summary[split]
        cells = [mean_std(scores[m] if scores else None) for m in METRIC_NAMES]
        times = [mean_std(summary["seconds"], 2), mean_std(summary["n_iter"], 1)]
        rows.append([method, *cells, *times])
    return _table(header, rows)


def sweep_metrics(document: Mapping[str, Any]) -> list[str]:
    """The scores a sweep document holds: the label ones when it has labels, then the
    inertia, silhouette and stability, which need none."""
    first = next(iter(document["methods"].values()))[0]
    labelled = first["summary"][document["score_split"]] is not None
    return [*(METRIC_NAMES if labelled else ()), "inertia", "silhouette", "stability"]


def sweep_stat(point: Mapping[str, Any], metric: str, split: str) -> Mapping[str, float] | None:
    """The mean and std of ``metric`` at one K of a sweep (None: not measured)."""
    if metric == "stability":
        value = point.get("stability")
        return None if value is None else {"mean": value, "std": 0.0}
    if metric == "silhouette":
        return point["silhouette"]
    if metric == "inertia":
        return point["summary"]["inertia"]
    scores = point["summary"][split]
    return scores[metric] if scores else None


def _sweep_cell(point: Mapping[str, Any], metric: str, split: str) -> str:
    stat = sweep_stat(point, metric, split)
    return f"{stat['mean']:.4g}" if metric == "inertia" else mean_std(stat)


def sweep_table(
    document: Mapping[str, Any],
    metrics: Sequence[str] = METRIC_NAMES,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Markdown table of a sweep: one row per K, one column per method and score.

    ``labels`` gives display names of the methods.
    """
    split = document["score_split"]
    methods = list(document["methods"])
    names = {method: (labels or {}).get(method, method) for method in methods}
    header = ["K"] + [f"{names[method]} {_HEADERS[m]}" for method in methods for m in metrics]
    rows = []
    for index, k in enumerate(document["clusters"]):
        row = [str(k)]
        for method in methods:
            point = document["methods"][method][index]
            row += [_sweep_cell(point, m, split) for m in metrics]
        rows.append(row)
    return _table(header, rows)


def _closer(ours: Mapping[str, float], reference: Mapping[str, float]) -> float:
    return math.sqrt(sum((ours[m] - reference[m]) ** 2 for m in reference))


def reproduce_report(
    document: Mapping[str, Any],
    figures: Mapping[str, str],
    *,
    command: str,
    created: str,
    versions: Mapping[str, Any],
    subset_note: str | None = None,
) -> str:
    """The ``report.md`` of ``neural-kmeans reproduce``, from
    :func:`~neural_kmeans.app.reproduce.reproduce_protocol`'s ``document``, made by
    ``command`` on the date ``created`` with the libraries' ``versions``.

    ``figures``: the figures' relative paths, under the keys ``centroids``,
    ``centroids_gif``, ``centroids_1_step``, ``history``, ``confusion`` and
    ``sweep_<metric>`` (any may be absent); ``subset_note`` says the run used a subset
    or fewer iterations (so it is not comparable).
    """
    seeds = document["seeds"]
    protocol = document["protocol"]
    n_iter = protocol["cnn"]["max_iter"]
    lines = [
        f"# Reproducing the seed notebook on {document['dataset']}",
        "",
        f"Made by `{command}` on {created} with neural-kmeans {versions.get('neural_kmeans')}, "
        f"torch {versions.get('torch')}, scikit-learn {versions.get('scikit-learn')}. "
        "All numbers below are computed by that run; `reproduce.json` beside this file "
        "holds every one of them, per seed.",
        "",
    ]
    if subset_note:
        lines += [f"> **{subset_note}**", ""]
    lines += [
        "## Protocol",
        "",
        f"- Data: fitted on the {document['n_train']:,} training images, scored on the "
        f"{document['n_test'] or 0:,} test images (`predict`); K = {document['n_clusters']}.",
        f"- Seeds: {', '.join(str(s) for s in seeds)}; tables give the mean ± sample "
        "standard deviation over the seeds.",
        f"- K-means: scikit-learn `KMeans(n_clusters=K, n_init=1, "
        f"max_iter={protocol['kmeans']['max_iter']})` (k-means++ seeding), on the "
        "pixels scaled to [0, 1].",
        f"- neural-kmeans: the notebook's CNN, initial centroids = K distinct random "
        f"training images, {n_iter} iterations, Adam (learning rate 1e-3), with one "
        "Adam step per iteration — what the notebook's code does — and with ten.",
        "",
        "## Test scores beside the notebook's",
        "",
    ]
    lines += _scores_table(document)
    lines += _steps_paragraph(document)
    lines += _figure_lines(document, figures)
    lines += _sweep_lines(document, figures)
    return "\n".join(lines).rstrip() + "\n"


def _scores_table(document: Mapping[str, Any]) -> list[str]:
    """Every method's mean test scores beside the notebook's."""
    reference, methods = document["reference"], document["methods"]
    header = ["method", "Rand", "notebook Rand", "purity", "notebook purity"]
    header += ["acc", "NMI", "ARI", "fit seconds"]
    notebook = {"kmeans": reference["kmeans"], "cnn-10-steps": reference["cnn"]}
    rows = []
    for name, entry in methods.items():
        test = entry["summary"]["test"] or {}
        ref = notebook.get(name)
        rows.append(
            [
                _VARIANT_LABELS.get(name, name),
                mean_std(test.get("rand")),
                f"{ref['rand']:.3f}" if ref else "—",
                mean_std(test.get("purity")),
                f"{ref['purity']:.3f}" if ref else "—",
                mean_std(test.get("acc")),
                mean_std(test.get("nmi")),
                mean_std(test.get("ari")),
                mean_std(entry["summary"]["seconds"], 1),
            ]
        )
    return [_table(header, rows), ""]


def _figure_lines(document: Mapping[str, Any], figures: Mapping[str, str]) -> list[str]:
    """The centroid, training and contingency figures of the first seed."""
    seeds, n_iter = document["seeds"], document["protocol"]["cnn"]["max_iter"]
    lines: list[str] = []
    centroid_figures = [
        ("centroids", f"the centroids after iteration {n_iter}, CNN with 10 steps"),
        ("centroids_gif", "the centroids at every iteration, CNN with 10 steps"),
        ("centroids_1_step", f"the centroids after iteration {n_iter}, CNN with 1 step"),
    ]
    present = [(key, text) for key, text in centroid_figures if key in figures]
    if present:
        lines += [
            "## Centroids",
            "",
            f"Seed {seeds[0]}. Each image is the mean of its cluster's training images "
            "(iteration 0: the initial random images); above each, the cluster's index "
            "and size.",
            "",
        ]
        for key, text in present:
            lines += [f"{text[0].upper()}{text[1:]}:", "", f"![{text}]({figures[key]})", ""]
        if "centroids_1_step_gif" in figures:
            lines += [
                f"Every iteration with 1 step: [animation]({figures['centroids_1_step_gif']}).",
                "",
            ]
    if "history" in figures:
        lines += [
            "## Training",
            "",
            f"Seed {seeds[0]}: the cross-entropy on the K centroids at the last step of "
            "each iteration, the fraction of training images that changed cluster, and "
            "the inertia (pixels in [0, 1]; dashed: K-means').",
            "",
            f"![training history]({figures['history']})",
            "",
        ]
    if "confusion" in figures:
        lines += [
            "## Clusters against classes (test set)",
            "",
            f"Seed {seeds[0]}; clusters reordered so that the best one-to-one matching "
            "lies on the diagonal.",
            "",
            f"![contingency tables]({figures['confusion']})",
            "",
        ]
    return lines


def _sweep_lines(document: Mapping[str, Any], figures: Mapping[str, str]) -> list[str]:
    """The sweep over K: its table and figures."""
    lines: list[str] = []
    sweep = document.get("sweep")
    if sweep:
        metrics = ("rand", "purity")
        lines += [
            "## Number of clusters",
            "",
            f"K-means and the CNN with 10 steps per iteration at K = "
            f"{', '.join(str(k) for k in sweep['clusters'])}, seed {sweep['seeds'][0]} "
            "only (one fit per method and K), scored on the test set.",
            "",
            sweep_table(sweep, metrics, {"kmeans": "K-means", "cnn": "CNN"}),
            "",
        ]
        for metric in METRIC_NAMES:
            key = f"sweep_{metric}"
            if key in figures and metric in metrics:
                lines += [f"![{metric} against K]({figures[key]})", ""]
        others = [
            f"[{m}]({figures[f'sweep_{m}']})"
            for m in METRIC_NAMES
            if m not in metrics and f"sweep_{m}" in figures
        ]
        if others:
            lines += [f"Other metrics against K: {', '.join(others)}.", ""]
    return lines


def _steps_paragraph(document: Mapping[str, Any]) -> list[str]:
    """What one and ten Adam steps per iteration give, from the run's own numbers."""
    methods = document["methods"]
    if "cnn-1-step" not in methods or "cnn-10-steps" not in methods:
        return []
    one = methods["cnn-1-step"]["summary"]["test"]
    ten = methods["cnn-10-steps"]["summary"]["test"]
    if not one or not ten:
        return []
    reference = document["reference"]["cnn"]
    ours_one = {m: one[m]["mean"] for m in reference}
    ours_ten = {m: ten[m]["mean"] for m in reference}
    closer = (
        "ten steps" if _closer(ours_ten, reference) <= _closer(ours_one, reference) else "one step"
    )
    text = [
        "**One step or ten.** The notebook's code takes a single Adam step per iteration "
        "on a CNN built from scratch. Here that gives a test Rand index of "
        f"{ours_one['rand']:.3f} and purity {ours_one['purity']:.3f}; ten steps give "
        f"{ours_ten['rand']:.3f} and {ours_ten['purity']:.3f}. The notebook reports "
        f"{reference['rand']:.3f} and {reference['purity']:.3f} for its CNN, nearer to "
        f"the run with {closer} per iteration.",
    ]
    histories = document.get("histories") or {}
    if "cnn-1-step" in histories and "cnn-10-steps" in histories:
        k = document["n_clusters"]
        last_one = histories["cnn-1-step"][-1]["loss"]
        last_ten = histories["cnn-10-steps"][-1]["loss"]
        text.append(
            f" After the last iteration the CNN's cross-entropy on the {k} centroids is "
            f"{last_one:.3f} with one step and {last_ten:.3f} with ten (an untrained "
            f"network's is about ln {k} = {math.log(k):.3f})."
        )
    return ["".join(text), ""]
