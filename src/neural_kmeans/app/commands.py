"""The command line's commands: each checks its inputs and outputs, runs a protocol of
:mod:`neural_kmeans.app.experiments`, and writes its results and figures.

One unit: every inertia a command prints or writes is in the samples' scaled units
(uint8 divided by 255; other data as is), as ``results.json`` states once.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from neural_kmeans.app import experiments as ex
from neural_kmeans.app.data import (
    DataSplit,
    check_device,
    load_data,
    resolve_clusters,
    resolve_threads,
    thread_limit,
    versions,
)
from neural_kmeans.app.errors import UsageError
from neural_kmeans.app.outputs import (
    _slug,
    check_names,
    check_out_dir,
    check_out_file,
    check_writable_place,
    make_out_dir,
    write_file_atomically,
    write_json,
)
from neural_kmeans.app.progress import ConsoleReporter
from neural_kmeans.app.reproduce import reproduce_protocol
from neural_kmeans.app.traces import Trajectory, trace_2d
from neural_kmeans.core import distributed
from neural_kmeans.core.metrics import METRIC_NAMES

PROG = "neural-kmeans"
QUICK = {"subset": 2000, "test_subset": 500, "max_iter": 3}
INERTIA_UNITS = "samples scaled to [0, 1] (uint8 divided by 255); other data as is"
#: The loop's options, and the methods that use each: given for none of the methods a
#: command runs, an option is refused rather than recorded and ignored.
_USERS = {
    "init": ("cnn", "mlp", "linear", "nearest-centroid", "kmeans"),
    "n_init": ("cnn", "mlp", "linear", "nearest-centroid", "learned", "kmeans"),
    "steps_per_iter": ("cnn", "mlp", "linear"),
    "learning_rate": ("cnn", "mlp", "linear"),
    "batch_size": ("cnn", "mlp", "linear", "nearest-centroid", "learned"),
    "learned_params": ("learned",),
}


def _command_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in [PROG, *argv])


def _load(args: argparse.Namespace, reporter: ConsoleReporter, **options: Any) -> DataSplit:
    data = load_data(
        args.dataset, args.data_dir, label_column=getattr(args, "label_column", None), **options
    )
    reporter.scale = data.scale
    return data


def _neural_config(
    args: argparse.Namespace, methods: Sequence[str], **overrides: Any
) -> ex.NeuralConfig:
    """The loop's options, each checked to apply to one of ``methods`` at least."""
    for option, users in _USERS.items():
        if getattr(args, option, None) is not None and not set(methods) & set(users):
            flag = "--" + option.replace("_", "-")
            raise UsageError(
                f"{flag} does not apply to {', '.join(methods)}: it is an option of "
                f"{', '.join(users)}; leave it out"
            )
    values = {
        name: getattr(args, name, None)
        for name in (*_USERS, "max_iter", "tol")
        if getattr(args, name, None) is not None
    }
    values["device"] = check_device(args.device)
    quiet = getattr(args, "quiet", False)
    values["verbose"] = 0 if quiet or "learned" not in methods else 1  # its stages' progress
    return ex.NeuralConfig(**{**values, **overrides})


def _plotting() -> Any:
    """The plotting module, or None (with a warning) when matplotlib is missing."""
    try:
        from neural_kmeans.app import plotting
    except ImportError as error:
        print(
            f"warning: no figures ({error}); install matplotlib: pip install 'neural-kmeans[plot]'",
            file=sys.stderr,
        )
        return None
    return plotting


def _print_runs(runs: dict[str, ex.MethodRun], stream: TextIO) -> None:
    header = f"{'method':<18}{'split':<7}" + "".join(f"{m:>8}" for m in METRIC_NAMES)
    header += f"{'inertia':>13}{'iters':>7}{'seconds':>9}"
    print(header, file=stream)
    for name, run in runs.items():
        for split in ("train", "test"):
            scores = getattr(run, split)
            if split == "test" and run.test_labels is None:
                continue  # no test split
            cells = "".join(f"{scores[m]:>8.3f}" if scores else f"{'—':>8}" for m in METRIC_NAMES)
            tail = f"{run.inertia:>13.6g}{run.n_iter:>7d}{run.seconds:>9.2f}"
            print(f"{name:<18}{split:<7}{cells}{tail if split == 'train' else ''}", file=stream)


def _wrote(context: dict[str, Any], names: Sequence[str]) -> None:
    print(f"outputs written to {context['out']}/: {', '.join(names)}")


def _settings(
    config: ex.NeuralConfig,
    methods: Sequence[str],
    threads: int | None,
    context: dict[str, Any],
) -> dict[str, Any]:
    """The settings behind a document: the loop's options as given (None: each method's
    default), each method's most iterations, K-means' settings, the runtime, the command."""
    neural = [m for m in methods if m != ex.KMEANS]
    given = (
        *("init", "n_init", "tol", "steps_per_iter", "learning_rate", "batch_size"),
        *("learned_params", "device"),
    )
    return {
        "methods": list(methods),
        **{name: getattr(config, name) for name in given},
        "max_iter": {m: ex.max_iterations(ex.method_config(m, config)) for m in neural},
        "kmeans": ex.kmeans_settings(config) if ex.KMEANS in methods else None,
        "inertia_units": INERTIA_UNITS,
        "threads": threads,
        "command": _command_line(context["argv"]),
    }


# --------------------------------------------------------------------------- run, predict
def cmd_run(args: argparse.Namespace, context: dict[str, Any]) -> int:
    reporter = context["reporter"]
    out = check_out_dir(args.out, _slug(args.dataset), args.overwrite)
    data = _load(args, reporter)
    k = resolve_clusters(data, args.clusters)
    (method,) = ex.check_methods(data, [args.method])
    if args.checkpoint and args.resume and Path(args.checkpoint) != Path(args.resume):
        raise UsageError("give --checkpoint DIR or --resume DIR, not two different folders")
    save_path = None if args.save_model is None else _check_save_path(args)
    config = _neural_config(
        args, [method], checkpoint_dir=args.resume or args.checkpoint, resume=bool(args.resume)
    )
    rank, world_size = distributed.rank_and_size()
    if world_size > 1 and method == "learned":
        raise UsageError("--method learned runs in one process: start it without torchrun")
    leader = rank == 0  # under torchrun every process fits its shard; process 0 writes
    if not leader:
        reporter = ConsoleReporter(quiet=True)
    else:
        out = make_out_dir(out, context, args.overwrite)
    threads = resolve_threads(args.threads, data.x_train.size)
    methods = [method] if args.no_kmeans or not leader else [method, ex.KMEANS]
    runs: dict[str, ex.MethodRun] = {}
    with thread_limit(threads):
        for name in methods:
            runs[name] = ex.fit_method(
                name, data, k, args.seed, config, reporter=reporter, record_centroids=name == method
            )
    reporter.close()
    if not leader:
        return 0
    settings = {
        **_settings(config, methods, threads, context),
        "checkpoint": args.checkpoint,
        "resume": args.resume,
        "seed": args.seed,
        "n_train": int(data.x_train.shape[0]),
        "n_test": None if data.x_test is None else int(data.x_test.shape[0]),
        "data_dir": args.data_dir,
        "processes": world_size,
    }
    results = ex.run_results(data, k, runs, settings)
    written = [write_json(results, out / "results.json").name]
    np.save(out / "labels.npy", runs[method].train_labels)
    written.append("labels.npy")
    plotting = _plotting()
    if plotting is not None:
        written += plotting.run_figures(data, runs, out, method)
    if save_path is not None:  # last: a failure before leaves no model behind
        runs[method].model.save(save_path)
        print(f"model saved to {save_path}")
    print(
        f"{data.name}: fitted on {data.fit_split} ({data.x_train.shape[0]:,} samples), "
        f"K={k}" + ("" if data.test_split is None else f", tested on {data.x_test.shape[0]:,}")
    )
    _print_runs(runs, sys.stdout)
    _wrote(context, written)
    return 0


def _check_save_path(args: argparse.Namespace) -> Path:
    """``--save-model FILE`` checked before any work: a writable place, no file replaced,
    not one of the run's own outputs."""
    path, target = args.save_model, Path(args.save_model).expanduser()
    check_names(target, "--save-model")
    if target.is_dir():
        raise UsageError(f"--save-model {path!r} is a folder; give a file name such as model.nkm")
    if target.exists() and not args.overwrite:
        raise UsageError(f"--save-model {path!r} exists; choose another name or pass --overwrite")
    if target.exists() and not target.is_file():
        raise UsageError(f"--save-model {path!r} is not a regular file; give a file name")
    out = None if args.out is None else Path(args.out).expanduser().absolute()
    if out is not None and target.parent.absolute() == out:  # made by the run, if new
        if target.suffix != ".nkm":  # the run writes no .nkm file of its own
            raise UsageError(
                f"--save-model {path!r} is in --out, where it could replace one of the run's "
                "own outputs; name it with the .nkm suffix (for example model.nkm)"
            )
    elif not target.parent.is_dir():
        raise UsageError(f"--save-model {path!r}: the folder {str(target.parent)!r} does not exist")
    else:
        check_writable_place(target.parent, "--save-model")
    return target


def cmd_predict(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans.core.metrics import evaluate
    from neural_kmeans.estimator import NeuralKMeans

    out = check_out_file(args.labels, "labels", args.overwrite, suffixes=(".npy", ".csv"))
    if not Path(args.model).is_file():
        what = "not a regular file" if Path(args.model).exists() else "no such file"
        raise UsageError(f"--model {args.model!r}: {what}; give a model file (.nkm)")
    try:
        model = NeuralKMeans.load(args.model, device=args.device)
    except ValueError as error:
        if "device" not in str(error) or args.device is not None:
            raise
        raise UsageError(f"{str(error).split('; the model')[0]}; pass --device cpu") from None
    data = load_data(args.dataset, args.data_dir, label_column=args.label_column)
    samples, target = data.x_train, data.y_train
    if data.x_test is not None and args.split == "test":
        samples, target = data.x_test, data.y_test
    elif data.x_test is not None and args.split == "all":
        samples = np.concatenate([data.x_train, data.x_test])
        target = None if data.y_train is None else np.concatenate([data.y_train, data.y_test])
    try:
        labels = np.asarray(model.predict(samples))
    except ValueError as error:  # other features or image shape than the model's
        raise UsageError(f"--dataset {args.dataset!r} does not fit the model: {error}") from None
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(path: Path) -> None:
        if out.suffix.lower() == ".csv":
            np.savetxt(path, labels, fmt="%d", header="cluster", comments="")
        else:
            with open(path, "wb") as handle:  # exactly this name: np.save would add .npy
                np.save(handle, labels)

    write_file_atomically(out, write)
    if not args.quiet:
        line = f"{len(labels):,} samples of {args.dataset} -> {model.n_clusters} clusters"
        if target is not None:
            scores = evaluate(target, labels)
            line += " | " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items())
        print(line)
        print(f"labels written to {out}")
    return 0


# --------------------------------------------------------------------------- compare, sweep
def cmd_compare(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans.app import report

    reporter = context["reporter"]
    out = check_out_dir(args.out, f"compare-{_slug(args.dataset)}", args.overwrite)
    data = _load(args, reporter)
    k = resolve_clusters(data, args.clusters)
    methods = ex.check_methods(data, args.methods or ex.available_methods(data))
    config = _neural_config(args, methods)
    out = make_out_dir(out, context, args.overwrite)
    threads = resolve_threads(args.threads, data.x_train.size)
    with thread_limit(threads):
        document = ex.compare_methods(data, k, methods, args.seed, config, reporter=reporter)
    reporter.close()
    document["config"] = _settings(config, methods, threads, context)
    document["versions"] = versions()
    table = report.compare_table(document)
    split = document["score_split"]
    heading = (
        f"# {data.name}: K={k}, seeds {' '.join(map(str, args.seed))}\n\n"
        f"Mean ± standard deviation over the seeds; metrics on the {split} split"
        f"{'' if split == 'test' else ' (the data fitted)'}; seconds: wall time of fit; "
        f"inertia: {INERTIA_UNITS}.\n"
    )
    (out / "compare.md").write_text(f"{heading}\n{table}\n")
    write_json(document, out / "compare.json")
    print(f"{data.name}, K={k}, {len(args.seed)} seed(s), metrics on {split}:\n")
    print(table)
    print()
    _wrote(context, ["compare.json", "compare.md"])
    return 0


def cmd_sweep(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans.app import report

    reporter = context["reporter"]
    out = check_out_dir(args.out, f"sweep-{_slug(args.dataset)}", args.overwrite)
    data = _load(args, reporter)
    clusters = list(dict.fromkeys(args.clusters))
    for k in clusters:
        resolve_clusters(data, k)
    methods = ex.check_methods(data, args.methods)
    config = _neural_config(args, methods)
    out = make_out_dir(out, context, args.overwrite)
    threads = resolve_threads(args.threads, data.x_train.size)
    with thread_limit(threads):
        document = ex.sweep_clusters(data, clusters, methods, args.seed, config, reporter=reporter)
    reporter.close()
    document["config"] = _settings(config, methods, threads, context)
    document["versions"] = versions()
    written = [write_json(document, out / "sweep.json").name]
    plotting = _plotting()
    metrics = report.sweep_metrics(document)
    (out / "sweep.md").write_text(
        f"# {data.name}: scores against K\n\n"
        f"Methods {', '.join(methods)}; seeds {' '.join(map(str, args.seed))}; label scores on "
        f"the {document['score_split']} split; silhouette on at most "
        f"{ex.SILHOUETTE_SAMPLES:,} samples; stability: the seeds' mean pairwise adjusted "
        f"Rand index.\n\n{report.sweep_table(document, metrics)}\n"
    )
    written.append("sweep.md")
    if plotting is not None:
        for metric in metrics:
            path = plotting.plot_sweep(document, metric, out / f"sweep_{metric}.png")
            written.append(path.name)
    print(f"{data.name}, scores against K:\n")
    print(report.sweep_table(document, metrics))
    print()
    _wrote(context, written)
    return 0


# --------------------------------------------------------------------------- reproduce
def cmd_reproduce(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans.app import report

    reporter = context["reporter"]
    out = check_out_dir(args.out, f"reproduce-{_slug(args.dataset)}", args.overwrite)
    quick = QUICK if args.quick else {}
    subset = args.subset if args.subset is not None else quick.get("subset")
    test_subset = args.test_subset if args.test_subset is not None else quick.get("test_subset")
    max_iter = args.max_iter or quick.get("max_iter", 20)
    data = _load(args, reporter, train_subset=subset, test_subset=test_subset)
    if data.x_test is None:
        raise UsageError(
            f"reproduce needs a data set with a test split (mnist, fashion-mnist); "
            f"{data.name} has none"
        )
    ex.check_methods(data, ["cnn"])
    clusters = list(dict.fromkeys(args.clusters))
    device = check_device(args.device)
    for k in [10, *clusters]:
        resolve_clusters(data, k)
    out = make_out_dir(out, context, args.overwrite)
    threads = resolve_threads(args.threads, data.x_train.size)
    with thread_limit(threads):
        document, first = reproduce_protocol(
            data,
            seeds=args.seed,
            clusters=clusters,
            max_iter=max_iter,
            kmeans_max_iter=args.kmeans_max_iter,
            device=device,
            reporter=reporter,
        )
    reporter.close()
    notes = _reproduce_notes(data, subset, test_subset, max_iter, args.kmeans_max_iter)
    subset_note = "Not comparable with the notebook: " + "; ".join(notes) + "." if notes else None
    library_versions = versions()
    document["config"] = {
        "dataset": args.dataset,
        "quick": args.quick,
        "subset": subset,
        "test_subset": test_subset,
        "device": device,
        "threads": threads,
        "inertia_units": INERTIA_UNITS,
        "command": _command_line(context["argv"]),
    }
    document["versions"] = library_versions
    written = [write_json(document, out / "reproduce.json").name]
    figures: dict[str, str] = {}
    plotting = _plotting()
    if plotting is not None:
        figures = plotting.reproduce_figures(data, first, document, out)
        tops = (name.split("/")[0] + "/" if "/" in name else name for name in figures.values())
        written += list(dict.fromkeys(tops))
    text = report.reproduce_report(
        document,
        figures,
        command=_command_line(context["argv"]),
        created=datetime.now().strftime("%Y-%m-%d"),
        versions=library_versions,
        subset_note=subset_note,
    )
    (out / "report.md").write_text(text)
    written.append("report.md")
    _print_reproduce(data, document, args.seed, subset_note)
    _wrote(context, written)
    print(f"report: {context['out'] / 'report.md'}")
    return 0


def _reproduce_notes(
    data: DataSplit, subset: int | None, test_subset: int | None, max_iter: int, kmeans: int
) -> list[str]:
    notes = []
    if subset is not None or test_subset is not None:
        notes.append(
            f"a random subset of {data.x_train.shape[0]:,} training and "
            f"{data.x_test.shape[0]:,} test images"
        )
    if max_iter != 20:
        notes.append(f"{max_iter} iterations instead of the notebook's 20")
    if kmeans != 30:
        notes.append(f"K-means max_iter={kmeans} instead of 30")
    if data.name != "mnist":
        notes.append(f"{data.name} instead of MNIST, on which the notebook's numbers were made")
    return notes


def _print_reproduce(
    data: DataSplit, document: dict[str, Any], seeds: Sequence[int], note: str | None
) -> None:
    rows = {name: entry["summary"]["test"] for name, entry in document["methods"].items()}
    print(f"{data.name}: test scores, mean over seeds {' '.join(map(str, seeds))}")
    print(f"{'method':<14}{'rand':>8}{'purity':>8}{'acc':>8}{'nmi':>8}")
    for name, scores in rows.items():
        cells = "".join(f"{scores[m]['mean']:>8.3f}" for m in ("rand", "purity", "acc", "nmi"))
        print(f"{name:<14}{cells}")
    reference = ex.NOTEBOOK_REFERENCE
    print(
        f"notebook: kmeans rand {reference['kmeans']['rand']:.3f} purity "
        f"{reference['kmeans']['purity']:.3f}; cnn rand {reference['cnn']['rand']:.3f} "
        f"purity {reference['cnn']['purity']:.3f}"
    )
    if note:
        print(note)


# --------------------------------------------------------------------------- animate, serve
def cmd_animate(args: argparse.Namespace, context: dict[str, Any]) -> int:
    reporter = context["reporter"]
    try:
        from neural_kmeans.app import animation
    except ImportError as error:
        raise UsageError(
            f"animate needs matplotlib ({error}): pip install 'neural-kmeans[plot]'"
        ) from None
    path = check_out_file(
        args.animation,
        f"{_slug(args.dataset)}-animation",
        args.overwrite,
        suffixes=(".gif", ".mp4"),
    )
    ok, reason = animation.can_write(path)
    if not ok:
        raise UsageError(reason)
    data = _load(args, reporter, n_samples=args.n_samples, noise=args.noise)
    if data.x_train.ndim != 2 or data.x_train.shape[1] != 2:
        raise UsageError(
            f"animate needs 2-D samples; {data.name} has samples of shape "
            f"{tuple(data.x_train.shape[1:])}"
        )
    k = resolve_clusters(data, args.clusters)
    (method,) = ex.check_methods(data, [args.method])
    config = ex.method_config(method, _neural_config(args, [method]))
    x = data.rows("train")
    threads = resolve_threads(0, x.size)  # automatic: animate has no --threads

    def trace(name: str, settings: ex.NeuralConfig, **options: Any) -> tuple[Trajectory, Any]:
        label = f"{name} K={k} seed={args.seed}"
        callback = reporter.start_fit(label, ex.max_iterations(settings))
        callbacks = [callback] if callback else ()
        traced = trace_2d(
            x, k, args.seed, settings, resolution=args.resolution, callbacks=callbacks, **options
        )
        reporter.end_fit(label, None)
        return traced

    with thread_limit(threads):
        trajectory, model = trace(method, config, title=f"neural-kmeans ({method})")
        trajectories = [trajectory]
        if args.compare_kmeans:
            lloyd = replace(config, network="nearest-centroid", init=None, n_init=None)
            first = np.asarray(model.initial_centers_)
            kmeans, _ = trace(ex.KMEANS, lloyd, init=first, title="K-means (Lloyd, same start)")
            trajectories.append(kmeans)
    reporter.close()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the folder of {str(path)!r}: {error}") from None
    reporter.message(f"drawing {animation.n_frames(trajectories)} frames")
    write_file_atomically(
        path,
        lambda temporary: animation.animate_trajectories(
            trajectories, x, temporary, fps=args.fps, title=f"{data.name}, K={k}"
        ),
    )
    summary = ", ".join(
        f"{t.title}: {t.n_iter} iterations{' (converged)' if t.converged else ''}"
        for t in trajectories
    )
    print(f"{summary}\nanimation written to {path} ({animation.n_frames(trajectories)} frames)")
    return 0


def cmd_serve(args: argparse.Namespace, context: dict[str, Any]) -> int:
    """The playground (:mod:`neural_kmeans.app.serve`), imported only here: it needs the
    serve extra."""
    try:
        from neural_kmeans.app.serve.server import serve_command
    except ImportError as error:
        raise UsageError(
            f"serve needs starlette and uvicorn ({error}): pip install 'neural-kmeans[serve]'"
        ) from None
    return serve_command(args)
