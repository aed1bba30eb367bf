"""The command line's commands: each checks its inputs and outputs, runs a protocol of
:mod:`neural_kmeans.app.experiments`, and writes its results and figures."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
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
    check_out_dir,
    check_out_file,
    make_out_dir,
    write_json,
)
from neural_kmeans.app.progress import ConsoleReporter
from neural_kmeans.app.reproduce import reproduce_protocol
from neural_kmeans.app.traces import Trajectory, trace_2d
from neural_kmeans.core import distributed
from neural_kmeans.core.metrics import METRIC_NAMES
from neural_kmeans.core.networks import LEARNED_NETWORK

PROG = "neural-kmeans"
QUICK = {"subset": 2000, "test_subset": 500, "max_iter": 3}


def _command_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in [PROG, *argv])


def _load(args: argparse.Namespace, **options: Any) -> DataSplit:
    return load_data(
        args.dataset,
        args.data_dir,
        label_column=getattr(args, "label_column", None),
        **options,
    )


def _neural_config(args: argparse.Namespace, **overrides: Any) -> ex.NeuralConfig:
    values = {
        "network": getattr(args, "network", "auto"),
        "init": args.init,
        "max_iter": args.max_iter,
        "steps_per_iter": args.steps_per_iter,
        "learning_rate": args.learning_rate,
        "tol": args.tol,
        "n_init": args.n_init,
        "batch_size": args.batch_size,
        "device": check_device(args.device),
        "features": getattr(args, "features", "pixels"),
    }
    values.update(overrides)
    return ex.NeuralConfig(**values)


def _check_network(network: str, data: DataSplit) -> None:
    if network != "cnn":
        return
    shape = data.image_shape
    if shape is None and data.n_features == 28 * 28:
        return
    if shape is None:
        raise UsageError(
            f"--network cnn needs images; {data.name} holds rows of {data.n_features} "
            "features: use --network mlp"
        )
    if min(shape[-2:]) < 8:
        raise UsageError(
            f"--network cnn needs images of at least 8x8 pixels; {data.name} has "
            f"{shape[-2]}x{shape[-1]}: use --network mlp"
        )


def _network_name(network: str, data: DataSplit) -> str:
    """The network ``auto`` stands for on ``data`` (cnn for images, mlp for rows)."""
    if network != "auto":
        return network
    images = data.image_shape is not None or data.n_features == 28 * 28
    return "cnn" if images else "mlp"


def _plotting(reporter: ConsoleReporter) -> Any:
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
    header = f"{'method':<16}{'split':<7}" + "".join(f"{m:>8}" for m in METRIC_NAMES)
    header += f"{'inertia':>13}{'iters':>7}{'seconds':>9}"
    print(header, file=stream)
    for name, run in runs.items():
        for split in ("train", "test"):
            scores = getattr(run, split)
            if split == "test" and run.test_labels is None:
                continue  # no test split
            cells = "".join(f"{scores[m]:>8.3f}" if scores else f"{'—':>8}" for m in METRIC_NAMES)
            tail = (
                f"{run.inertia:>13.6g}{run.n_iter:>7d}{run.seconds:>9.2f}"
                if split == "train"
                else ""
            )
            print(f"{name:<16}{split:<7}{cells}{tail}", file=stream)


def _wrote(out: Path, names: Sequence[str]) -> None:
    print(f"outputs written to {out}/: {', '.join(names)}")


def _add_settings(
    document: dict[str, Any],
    config: ex.NeuralConfig,
    args: argparse.Namespace,
    threads: int | None,
    context: dict[str, Any],
) -> None:
    """Add the settings and the versions behind a compare or sweep ``document``."""
    document["config"] = {
        **config.as_dict(),
        "kmeans": {"n_init": 1, "init": "k-means++", "max_iter": args.kmeans_max_iter},
        "threads": threads,
        "command": _command_line(context["argv"]),
    }
    document["versions"] = versions()


# --------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace, context: dict[str, Any]) -> int:
    reporter = context["reporter"]
    out = check_out_dir(args.out, _slug(args.dataset), args.overwrite)
    data = _load(args)
    k = resolve_clusters(data, args.clusters)
    _check_network(args.network, data)
    if args.checkpoint and args.resume and Path(args.checkpoint) != Path(args.resume):
        raise UsageError("give --checkpoint DIR or --resume DIR, not two different folders")
    save_path = None if args.save is None else _check_save_path(args.save, args.overwrite)
    config = _neural_config(
        args, checkpoint_dir=args.resume or args.checkpoint, resume=bool(args.resume)
    )
    # Under torchrun every process fits its shard; process 0 alone writes and reports.
    rank, world_size = distributed.rank_and_size()
    if world_size > 1 and config.features == "learned":
        raise UsageError("--features learned runs in one process: start it without torchrun")
    leader = rank == 0
    if not leader:
        reporter = ConsoleReporter(quiet=True)
    else:
        out = make_out_dir(out, context)
    threads = resolve_threads(args.threads, data.x_train.size)
    methods = [ex.NEURAL] if args.no_baseline or not leader else [ex.NEURAL, ex.KMEANS]
    runs: dict[str, ex.MethodRun] = {}
    with thread_limit(threads):
        for method in methods:
            runs[method] = ex.fit_method(
                method,
                data,
                k,
                args.seed,
                config,
                kmeans_max_iter=args.kmeans_max_iter,
                reporter=reporter,
                record_centroids=method == ex.NEURAL,
            )
    if not leader:
        return 0
    settings = {
        **config.as_dict(),
        "max_iter": ex.max_iterations(config),
        "network_resolved": LEARNED_NETWORK
        if config.features == "learned"
        else _network_name(args.network, data),
        "seed": args.seed,
        "n_train": int(data.x_train.shape[0]),
        "n_test": None if data.x_test is None else int(data.x_test.shape[0]),
        "kmeans": None
        if args.no_baseline
        else {"n_init": 1, "init": "k-means++", "max_iter": args.kmeans_max_iter},
        "data_dir": args.data_dir,
        "threads": threads,
        "processes": world_size,
        "inertia_units": "samples scaled to [0, 1] (uint8 / 255); other data as is",
        "command": _command_line(context["argv"]),
    }
    results = ex.run_results(data, k, runs, settings)
    written = [write_json(results, out / "results.json").name]
    np.save(out / "labels.npy", runs[ex.NEURAL].train_labels)
    written.append("labels.npy")
    if save_path is not None:
        runs[ex.NEURAL].model.save(save_path)
        print(f"model saved to {save_path}")
    plotting = _plotting(reporter)
    if plotting is not None:
        written += plotting.run_figures(data, runs, out)
    print(
        f"{data.name}: fitted on {data.fit_split} ({data.x_train.shape[0]:,} samples), "
        f"K={k}" + ("" if data.test_split is None else f", tested on {data.x_test.shape[0]:,}")
    )
    _print_runs(runs, sys.stdout)
    _wrote(out, written)
    return 0


def _check_save_path(path: str, overwrite: bool) -> Path:
    """``--save FILE`` checked before any work: a writable place, no file replaced."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise UsageError(f"--save {path!r} is a folder; give a file name such as model.nkm")
    if target.exists() and not overwrite:
        raise UsageError(f"--save {path!r} exists; choose another name or pass --overwrite")
    if not target.parent.is_dir():
        raise UsageError(f"--save {path!r}: the folder {str(target.parent)!r} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise UsageError(f"--save {path!r}: the folder {str(target.parent)!r} is not writable")
    return target


def cmd_predict(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans.core.metrics import evaluate
    from neural_kmeans.estimator import NeuralKMeans

    out = check_out_file(args.out, "labels", args.overwrite)
    if not Path(args.model).is_file():
        raise UsageError(f"--model {args.model!r}: no such file")
    model = NeuralKMeans.load(args.model, device=args.device)
    data = load_data(args.input, args.data_dir)
    samples, target = data.x_train, data.y_train
    if data.x_test is not None and args.split == "test":
        samples, target = data.x_test, data.y_test
    labels = np.asarray(model.predict(samples))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, labels)
    if not args.quiet:
        line = f"{len(labels):,} samples of {args.input} -> {model.n_clusters} clusters"
        if target is not None:
            scores = evaluate(target, labels)
            line += " | " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items())
        print(line)
        print(f"labels written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans.app import report

    reporter = context["reporter"]
    out = check_out_dir(args.out, f"compare-{_slug(args.dataset)}", args.overwrite)
    data = _load(args)
    k = resolve_clusters(data, args.clusters)
    defaults = ex.available_methods(data)
    if args.features == "learned":
        defaults.insert(-1, ex.LEARNED)  # before kmeans
    methods = ex.check_methods(data, args.methods or defaults)
    config = _neural_config(args)
    out = make_out_dir(out, context)
    threads = resolve_threads(args.threads, data.x_train.size)
    with thread_limit(threads):
        document = ex.compare_methods(
            data,
            k,
            methods,
            args.seeds,
            config,
            kmeans_max_iter=args.kmeans_max_iter,
            reporter=reporter,
        )
    _add_settings(document, config, args, threads, context)
    table = report.compare_table(document)
    split = document["score_split"]
    heading = (
        f"# {data.name}: K={k}, seeds {' '.join(map(str, args.seeds))}\n\n"
        f"Mean ± standard deviation over the seeds; metrics on the {split} split"
        f"{'' if split == 'test' else ' (the data fitted)'}; seconds: wall time of fit.\n"
    )
    (out / "compare.md").write_text(f"{heading}\n{table}\n")
    write_json(document, out / "compare.json")
    print(f"{data.name}, K={k}, {len(args.seeds)} seed(s), metrics on {split}:\n")
    print(table)
    print()
    _wrote(out, ["compare.json", "compare.md"])
    return 0


def cmd_sweep(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans.app import report

    reporter = context["reporter"]
    out = check_out_dir(args.out, f"sweep-{_slug(args.dataset)}", args.overwrite)
    data = _load(args)
    clusters = list(dict.fromkeys(args.clusters))
    for k in clusters:
        resolve_clusters(data, k)
    _check_network(args.network, data)
    config = _neural_config(args)
    out = make_out_dir(out, context)
    methods = [ex.NEURAL, ex.KMEANS]
    threads = resolve_threads(args.threads, data.x_train.size)
    with thread_limit(threads):
        document = ex.sweep_clusters(
            data,
            clusters,
            methods,
            args.seeds,
            config,
            kmeans_max_iter=args.kmeans_max_iter,
            reporter=reporter,
        )
    _add_settings(document, config, args, threads, context)
    written = [write_json(document, out / "sweep.json").name]
    table = report.sweep_table(document, ("acc", "nmi", "rand", "purity"))
    (out / "sweep.md").write_text(
        f"# {data.name}: metrics against K ({document['score_split']})\n\n"
        f"neural-kmeans network: {_network_name(args.network, data)}; "
        f"seeds {' '.join(map(str, args.seeds))}.\n\n"
        f"{report.sweep_table(document)}\n"
    )
    written.append("sweep.md")
    plotting = _plotting(reporter)
    if plotting is not None:
        for metric in METRIC_NAMES:
            path = plotting.plot_sweep(
                document,
                metric,
                out / f"sweep_{metric}.png",
                labels={
                    ex.NEURAL: f"neural-kmeans ({_network_name(args.network, data)})",
                    ex.KMEANS: "K-means",
                },
            )
            written.append(path.name)
    print(f"{data.name}, metrics on {document['score_split']}:\n")
    print(table)
    print()
    _wrote(out, written)
    return 0


def cmd_reproduce(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans.app import report

    reporter = context["reporter"]
    out = check_out_dir(args.out, f"reproduce-{_slug(args.dataset)}", args.overwrite)
    subset = args.subset if args.subset is not None else (QUICK["subset"] if args.quick else None)
    test_subset = args.test_subset
    if test_subset is None and args.quick:
        test_subset = QUICK["test_subset"]
    max_iter = args.max_iter or (QUICK["max_iter"] if args.quick else 20)
    data = _load(args, train_subset=subset, test_subset=test_subset)
    if data.x_test is None:
        raise UsageError(
            f"reproduce needs a data set with a test split (mnist, fashion-mnist); "
            f"{data.name} has none"
        )
    _check_network("cnn", data)
    clusters = list(dict.fromkeys(args.clusters))
    device = check_device(args.device)
    for k in [10, *clusters]:
        resolve_clusters(data, k)
    out = make_out_dir(out, context)
    threads = resolve_threads(args.threads, data.x_train.size)
    with thread_limit(threads):
        document, first = reproduce_protocol(
            data,
            seeds=args.seeds,
            clusters=clusters,
            max_iter=max_iter,
            kmeans_max_iter=args.kmeans_max_iter,
            device=device,
            reporter=reporter,
        )
    notes = []
    if subset is not None or test_subset is not None:
        notes.append(
            f"a random subset of {data.x_train.shape[0]:,} training and "
            f"{data.x_test.shape[0]:,} test images"
        )
    if max_iter != 20:
        notes.append(f"{max_iter} iterations instead of the notebook's 20")
    if args.kmeans_max_iter != 30:
        notes.append(f"K-means max_iter={args.kmeans_max_iter} instead of 30")
    if data.name != "mnist":
        notes.append(f"{data.name} instead of MNIST, on which the notebook's numbers were made")
    subset_note = "Not comparable with the notebook: " + "; ".join(notes) + "." if notes else None
    library_versions = versions()
    document["config"] = {
        "dataset": args.dataset,
        "quick": args.quick,
        "subset": subset,
        "test_subset": test_subset,
        "device": device,
        "threads": threads,
        "command": _command_line(context["argv"]),
    }
    document["versions"] = library_versions
    written = [write_json(document, out / "reproduce.json").name]
    figures: dict[str, str] = {}
    plotting = _plotting(reporter)
    if plotting is not None:
        figures = plotting.reproduce_figures(data, first, document, out)
        tops = (name.split("/")[0] + "/" if "/" in name else name for name in figures.values())
        written += list(dict.fromkeys(tops))
    text = report.reproduce_report(
        document,
        figures,
        command=_command_line(context["argv"]),
        created=datetime.now().strftime("%Y-%m-%d %H:%M"),
        versions=library_versions,
        subset_note=subset_note,
    )
    (out / "report.md").write_text(text)
    written.append("report.md")
    rows = {name: entry["summary"]["test"] for name, entry in document["methods"].items()}
    print(f"{data.name}: test scores, mean over seeds {' '.join(map(str, args.seeds))}")
    print(f"{'method':<14}{'rand':>8}{'purity':>8}{'acc':>8}{'nmi':>8}")
    for name, scores in rows.items():
        print(
            f"{name:<14}"
            + "".join(f"{scores[m]['mean']:>8.3f}" for m in ("rand", "purity", "acc", "nmi"))
        )
    reference = ex.NOTEBOOK_REFERENCE
    print(
        f"notebook: kmeans rand {reference['kmeans']['rand']:.3f} purity "
        f"{reference['kmeans']['purity']:.3f}; cnn rand {reference['cnn']['rand']:.3f} "
        f"purity {reference['cnn']['purity']:.3f}"
    )
    if subset_note:
        print(subset_note)
    _wrote(out, written)
    print(f"report: {out / 'report.md'}")
    return 0


def cmd_animate(args: argparse.Namespace, context: dict[str, Any]) -> int:
    reporter = context["reporter"]
    try:
        from neural_kmeans.app import animation
    except ImportError as error:
        raise UsageError(
            f"animate needs matplotlib ({error}): pip install 'neural-kmeans[plot]'"
        ) from None
    path = check_out_file(args.out, f"{_slug(args.dataset)}-animation", args.overwrite)
    ok, reason = animation.can_write(path)
    if not ok:
        raise UsageError(reason)
    data = _load(args, n_samples=args.n_samples, noise=args.noise)
    if data.x_train.ndim != 2 or data.x_train.shape[1] != 2:
        raise UsageError(
            f"animate needs 2-D samples; {data.name} has samples of shape "
            f"{tuple(data.x_train.shape[1:])}"
        )
    k = resolve_clusters(data, args.clusters)
    _check_network(args.network, data)
    config = _neural_config(args)
    x = data.rows("train")
    threads = resolve_threads(args.threads, x.size)

    def trace(method: str, settings: ex.NeuralConfig, **options: Any) -> tuple[Trajectory, Any]:
        label = f"{method} K={k} seed={args.seed}"
        callback = reporter.start_fit(label, config.max_iter)
        traced = trace_2d(
            x,
            k,
            args.seed,
            settings,
            resolution=args.resolution,
            callbacks=[callback] if callback else (),
            **options,
        )
        reporter.end_fit(label, None)
        return traced

    with thread_limit(threads):
        trajectory, model = trace(
            ex.NEURAL, config, title=f"neural-kmeans ({_network_name(args.network, data)})"
        )
        trajectories = [trajectory]
        if args.compare_kmeans:
            lloyd = ex.NeuralConfig(
                **{**config.as_dict(), "network": "nearest-centroid", "init": "random"}
            )
            kmeans, _ = trace(
                ex.KMEANS,
                lloyd,
                init=np.asarray(model.initial_centers_),
                title="K-means (Lloyd, same start)",
            )
            trajectories.append(kmeans)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the folder of {str(path)!r}: {error}") from None
    reporter.message(f"drawing {animation.n_frames(trajectories)} frames")
    animation.animate_trajectories(trajectories, x, path, fps=args.fps, title=f"{data.name}, K={k}")
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
