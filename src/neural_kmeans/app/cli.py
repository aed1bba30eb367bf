"""The ``neural-kmeans`` command line: one vocabulary of options, declared once.

Every option is declared once in :data:`OPTIONS` and each command lists the ones it
takes (:data:`COMMANDS`), so the same thing has the same name everywhere; the
reference in ``docs/cli.md`` is written from this parser (:mod:`~neural_kmeans.app.cli_reference`).
The commands themselves are :mod:`neural_kmeans.app.commands`, imported (with torch)
only once the command line has been read, so ``--help`` and ``--version`` are fast.

Exit status: 0 on success, 2 for an error the user can fix (one ``error: ...`` line
on standard error), 1 for an unexpected error (one line, the traceback in a log
file), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from neural_kmeans.app.errors import CommandLineError, UsageError

__all__ = ["build_parser", "main"]

PROG = "neural-kmeans"
#: The reference notebook's values of K.
SEED_CLUSTERS = (2, 5, 8, 10, 15, 20)
#: The methods, by the one name each has everywhere (options, tables, JSON).
METHOD_CHOICES = ("auto", "cnn", "mlp", "linear", "nearest-centroid", "learned", "kmeans")
NEURAL_METHODS = METHOD_CHOICES[:-1]
INIT_CHOICES = ("random", "k-means++")


# --------------------------------------------------------------------------- value types
def _number(
    text: str, convert: Callable[[str], Any], valid: Callable[[Any], bool], expected: str
) -> Any:
    """``text`` parsed with ``convert`` and checked with ``valid``, or a one-line error."""
    try:
        value = convert(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _bounded_int(low: int, high: int, expected: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        return _number(text, int, lambda value: low <= value <= high, expected)

    parse.__name__ = "int"
    return parse


def _float(low: float, high: float, expected: str, *, open_low: bool = False) -> Callable:
    def parse(text: str) -> float:
        def valid(v: float) -> bool:
            return math.isfinite(v) and (v > low if open_low else v >= low) and v <= high

        return _number(text, float, valid, expected)

    parse.__name__ = "float"
    return parse


_positive_int = _bounded_int(1, 10**9, "a positive integer")
_seed = _bounded_int(0, 2**32 - 1, "a seed between 0 and 2**32-1")
_threads = _bounded_int(0, max(os.cpu_count() or 1, 1), f"0 (automatic) to {os.cpu_count()}")
_FLOAT32_MAX = 3.4028234663852886e38


def _learned_params(text: str) -> dict:
    """A JSON object of the learned mode's parameters, checked as the estimator checks it."""
    from neural_kmeans.representation.self_labelling import learned_params

    try:
        value = json.loads(text)
        learned_params(value)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}): {text!r}") from None
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def _n_init(text: str) -> str | int:
    return "auto" if text == "auto" else _number(text, int, lambda v: 1 <= v <= 1000, "auto or N")


# --------------------------------------------------------------------------- the options
@dataclass(frozen=True)
class Option:
    """One option: its flag, its argparse keywords, and the help group it belongs to."""

    flag: str
    group: str
    options: dict[str, Any] = field(default_factory=dict)


def _option(flag: str, group: str, **options: Any) -> Option:
    return Option(flag, group, options)


#: Every option of every command, by name.
OPTIONS: dict[str, Option] = {
    "dataset": _option(
        "--dataset",
        "data",
        default="digits",
        metavar="NAME|PATH",
        help="digits, mnist, fashion-mnist, blobs, moons, circles, or the path of a .npy, "
        ".npz or .csv file or of an image folder (sub-folders are classes; a flat folder "
        "has no labels)",
    ),
    "data_dir": _option(
        "--data-dir",
        "data",
        metavar="DIR",
        help="folder holding mnist/ and fashion-mnist/ (else $NEURAL_KMEANS_DATA, "
        "/usr/share/datasets, the cache, or a download)",
    ),
    "label_column": _option(
        "--label-column", "data", metavar="COLUMN", help="name or index of a CSV's label column"
    ),
    "split": _option(
        "--split",
        "data",
        choices=("train", "test", "all"),
        default="test",
        help="the split of a data set that has one (mnist, fashion-mnist, "
        "a .npz with x_train and x_test)",
    ),
    "clusters": _option(
        "--clusters",
        "clustering",
        type=_positive_int,
        metavar="K",
        help="the number of clusters (default: the number of classes, when there are labels)",
    ),
    "seed": _option("--seed", "clustering", type=_seed, default=0, metavar="N", help="random seed"),
    "method": _option(
        "--method",
        "clustering",
        choices=NEURAL_METHODS,
        default="auto",
        help="cnn, mlp, linear, nearest-centroid (exactly K-means) or learned (image gradients "
        "+ UMAP, a self-labelled network; needs umap-learn); auto: cnn for images of 8x8 "
        "pixels or more, mlp otherwise",
    ),
    "methods": _option(
        "--methods",
        "clustering",
        nargs="+",
        choices=METHOD_CHOICES,
        metavar="METHOD",
        help="any of auto, cnn, mlp, linear, nearest-centroid, learned, kmeans",
    ),
    "init": _option(
        "--init",
        "the loop",
        choices=INIT_CHOICES,
        help="first centroids: k-means++ seeding or K random samples (default: k-means++)",
    ),
    "n_init": _option(
        "--n-init",
        "the loop",
        type=_n_init,
        metavar="N",
        help="runs from different first centroids, the lowest inertia kept (default: auto, "
        "1 for k-means++ and 10 for random, as scikit-learn)",
    ),
    "max_iter": _option(
        "--max-iter",
        "the loop",
        type=_positive_int,
        metavar="N",
        help="most iterations (default: 300 for nearest-centroid and K-means, 20 for the "
        "trained networks, 1 for learned)",
    ),
    "tol": _option(
        "--tol",
        "the loop",
        type=_float(0.0, 1e6, "a number >= 0"),
        metavar="TOL",
        help="stop when no label changes or the centroids' squared moves add up to at most "
        "TOL times the data's mean variance per feature (default: 0.0001, scikit-learn's)",
    ),
    "steps_per_iter": _option(
        "--steps-per-iter",
        "the loop",
        type=_positive_int,
        metavar="N",
        help="gradient steps on the centroids per iteration (default: 10; the notebook's "
        "code took 1)",
    ),
    "learning_rate": _option(
        "--learning-rate",
        "the loop",
        type=_float(0.0, _FLOAT32_MAX, "a positive number up to 3.4e38", open_low=True),
        metavar="LR",
        help="the optimiser's step (default: 1e-3 for the CNN, 1e-2 for the other networks)",
    ),
    "batch_size": _option(
        "--batch-size",
        "the loop",
        type=_positive_int,
        metavar="N",
        help="inference batch (default: 256 for the CNN on a CPU, else 4096)",
    ),
    "learned_params": _option(
        "--learned-params",
        "the loop",
        type=_learned_params,
        metavar="JSON",
        help="the learned method's parameters (NeuralKMeans' learned_params), for example "
        "'{\"refine_rounds\": 1}'; --max-iter and --tol given beside take precedence",
    ),
    "device": _option(
        "--device", "the loop", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N"
    ),
    "no_kmeans": _option(
        "--no-kmeans", "clustering", action="store_true", help="skip the K-means baseline"
    ),
    "out": _option(
        "--out", "output", metavar="DIR", help="output folder (default: a new runs/<name>-<time>)"
    ),
    "overwrite": _option(
        "--overwrite", "output", action="store_true", help="write over existing output files"
    ),
    "quiet": _option(
        "--quiet", "output", action="store_true", help="no progress, no warnings; results only"
    ),
    "threads": _option(
        "--threads",
        "output",
        type=_threads,
        default=0,
        metavar="N",
        help="CPU threads; 0: automatic (1 for small data, else PyTorch's default)",
    ),
}

#: Options shared by the fitting commands.
_DATA = ("dataset", "data_dir", "label_column")
_LOOP = ("init", "n_init", "max_iter", "tol", "steps_per_iter", "learning_rate", "batch_size")
_LEARNED = (*_LOOP, "learned_params")
_OUTPUT = ("out", "overwrite", "quiet", "threads")


@dataclass(frozen=True)
class Command:
    """A command: its one-line summary, its description, its options (with the
    command's own defaults or help where they differ) and extra arguments."""

    summary: str
    description: str
    options: tuple[str, ...]
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: Callable[[argparse.ArgumentParser], None] | None = None


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("saving and resuming")
    group.add_argument(
        "--save-model", metavar="FILE", help="write the fitted model to FILE (.nkm; no pickle)"
    )
    group.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="write the loop's state to DIR after every iteration; Ctrl-C then stops cleanly",
    )
    group.add_argument(
        "--resume", metavar="DIR", help="continue the fit checkpointed in DIR (same options)"
    )


def _add_predict_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="FILE", help="a model saved by run")
    parser.add_argument(
        "--labels",
        required=True,
        metavar="FILE",
        help="where to write the clusters: a .npy array or a .csv column",
    )


def _add_reproduce_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("smaller runs (not comparable with the notebook)")
    group.add_argument("--quick", action="store_true", help="--subset 2000 --test-subset 500 ...")
    group.add_argument("--subset", type=_positive_int, metavar="N", help="N training images")
    group.add_argument("--test-subset", type=_positive_int, metavar="N", help="N test images")
    parser.add_argument(
        "--kmeans-max-iter", type=_positive_int, default=30, metavar="N", help="K-means max_iter"
    )


def _add_animate_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("drawing")
    group.add_argument(
        "--animation",
        metavar="FILE",
        help="the animation, .gif or .mp4 (default: a new runs/<dataset>-<time>.gif)",
    )
    group.add_argument("--compare-kmeans", action="store_true", help="draw K-means beside it")
    group.add_argument(
        "--fps", type=_float(0.1, 60.0, "0.1 to 60"), default=2.0, help="frames per second"
    )
    group.add_argument(
        "--resolution",
        type=_bounded_int(10, 1000, "10 to 1000"),
        default=150,
        metavar="N",
        help="grid points per axis of the decision regions",
    )
    group.add_argument(
        "--n-samples", type=_bounded_int(2, 100_000, "2 to 100000"), metavar="N",
        help="samples of a toy data set (default 1500)",
    )  # fmt: skip
    group.add_argument(
        "--noise", type=_float(0.0, 10.0, "0 to 10"), metavar="SD", help="toy noise (0.05)"
    )


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (another one: with a warning)"
    )
    parser.add_argument(
        "--port",
        type=_bounded_int(0, 65535, "a port (0-65535; 0: any free)"),
        default=8000,
        help="port to listen on (0: any free port)",
    )
    parser.add_argument("--open", action="store_true", help="open the page in a browser")
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name the page may be opened by (with --host 0.0.0.0), repeatable",
    )
    parser.add_argument(
        "--data-dir", metavar="DIR", help="folder holding mnist/ and fashion-mnist/"
    )
    parser.add_argument(
        "--max-samples",
        type=_bounded_int(10, 10**6, "10 to 1000000"),
        default=20_000,
        metavar="N",
        help="most samples a page may cluster",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=_float(0.0, 1024.0, "a size in MB up to 1024", open_low=True),
        default=20.0,
        metavar="MB",
        help="largest upload",
    )


#: The commands, in the order ``--help`` lists them.
COMMANDS: dict[str, Command] = {
    "run": Command(
        "one clustering run, with K-means beside it",
        "Fit a method on the training split (all of the data when there is no split), score "
        "it on train and, when there is one, on test (through predict), and fit "
        "scikit-learn's KMeans on the same data with the same first centroids' rule.\n\n"
        "Writes into --out: results.json, labels.npy, history.png, confusion.png (with "
        "labels), centroids/iter_*.png and centroids.gif (images), clusters.png (2-D rows).",
        (*_DATA, "clusters", "seed", "method", *_LEARNED, "device", "no_kmeans", *_OUTPUT),
        extra=_add_run_options,
    ),
    "predict": Command(
        "the clusters of new samples, with a saved model",
        "Load a model written by 'run --save-model' and write the cluster of every sample "
        "of --dataset to --labels; with labels, the metrics are printed too.",
        (*_DATA, "split", "device", "overwrite", "quiet"),
        overrides={"dataset": {"default": None, "required": True}, "device": {"default": None}},
        extra=_add_predict_options,
    ),
    "compare": Command(
        "methods x seeds: mean ± std of every metric",
        "Fit every method with every seed and report each metric and the fit's seconds as "
        "mean ± standard deviation over the seeds, on the test split when there is one.\n\n"
        "Writes compare.json and compare.md into --out.",
        (*_DATA, "clusters", "seed", "methods", *_LEARNED, "device", *_OUTPUT),
        overrides={
            "seed": {"nargs": "+", "default": [0, 1, 2]},
            "methods": {
                "help": "methods to compare (default: every network that fits the data, and kmeans)"
            },
        },
    ),
    "sweep": Command(
        "every metric against the number of clusters K, with or without labels",
        "Fit every method at every K over the seeds; score them against the labels when "
        "there are any, and always by inertia, silhouette (on at most 2,000 samples) and "
        "stability (the agreement of the seeds' clusterings, adjusted Rand index).\n\n"
        "Writes sweep.json, sweep.md and one sweep_<metric>.png per metric.",
        (*_DATA, "clusters", "seed", "methods", *_LEARNED, "device", *_OUTPUT),
        overrides={
            "clusters": {"nargs": "+", "default": list(SEED_CLUSTERS), "help": "the values of K"},
            "seed": {"nargs": "+", "default": [0, 1, 2]},
            "methods": {"default": ["auto", "kmeans"]},
        },
    ),
    "reproduce": Command(
        "the reference notebook's protocol on MNIST, with a report (about 6 minutes on 2 cores)",
        "K-means (max_iter=30) and the notebook's CNN (random first centroids, 20 "
        "iterations) with one Adam step per iteration (its code) and with ten (what its "
        "figures reflect), fitted on the 60,000 training images and scored on the 10,000 "
        "test images, for each seed; then the sweep over --clusters (first seed).\n\n"
        "Writes reproduce.json, report.md and the figures into --out. --quick checks the "
        "whole pipeline in about a minute.",
        ("dataset", "data_dir", "seed", "clusters", "max_iter", "device", *_OUTPUT),
        overrides={
            "dataset": {"default": "mnist", "help": "mnist or fashion-mnist"},
            "seed": {"nargs": "+", "default": [0, 1, 2]},
            "clusters": {
                "nargs": "*",
                "default": list(SEED_CLUSTERS),
                "help": "the sweep's values of K (none: no sweep)",
            },
            "max_iter": {"help": "iterations of the CNN (default: 20; 3 with --quick)"},
        },
        extra=_add_reproduce_options,
    ),
    "animate": Command(
        "an animated GIF/MP4 of the algorithm on 2-D data",
        "On 2-D samples, draw each iteration: the network's decision regions, the samples "
        "coloured by cluster, the centroids and their trails (frame 0: the first "
        "centroids); --compare-kmeans adds K-means from the same first centroids.",
        (*_DATA, "clusters", "seed", "method", *_LOOP, "device", "overwrite", "quiet"),
        overrides={
            "dataset": {"default": "moons"},
            "method": {"choices": NEURAL_METHODS[:-1]},
        },
        extra=_add_animate_options,
    ),
    "serve": Command(
        "a live playground in the browser",
        "Start a local web server and print its address: a page that runs the algorithm "
        "live next to K-means from the same first centroids, on toy 2-D sets (add or "
        "remove points by clicking), digits, MNIST or Fashion-MNIST subsets, or an uploaded "
        ".npy/.npz/.csv, and exports results.json, the GIF and the model; no CDN. "
        "Ctrl-C stops it. Needs the serve extra: pip install 'neural-kmeans[serve]'.",
        (),
        extra=_add_serve_options,
    ),
}


# --------------------------------------------------------------------------- the parser
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and an exit status of 2."""

    def error(self, message: str) -> Any:
        raise CommandLineError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and shows the defaults that say something."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, argparse.SUPPRESS):
            return text
        if isinstance(default, list):
            return f"{text} (default: {' '.join(str(v) for v in default)})"
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    """The ``neural-kmeans`` argument parser, from :data:`OPTIONS` and :data:`COMMANDS`."""
    from neural_kmeans import __version__

    parser = _Parser(
        prog=PROG,
        allow_abbrev=False,
        description="Clustering with a neural network in place of K-means' distance step: "
        "each iteration trains a classifier on the K centroids, gives every sample its "
        "predicted class, and moves each centroid to the mean of its members.",
        epilog="examples (outputs go to runs/):\n"
        f"  {PROG} run                                   # digits, offline, ~20 s\n"
        f"  {PROG} run --dataset mnist --method learned  # ~8 min\n"
        f"  {PROG} compare --methods nearest-centroid mlp kmeans\n"
        f"  {PROG} sweep --dataset digits --clusters 5 8 10 15\n"
        f"  {PROG} animate --compare-kmeans\n"
        f"  {PROG} serve\n\n"
        f"'{PROG} COMMAND --help' explains each command's options; docs/cli.md has them all.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=command.summary,
            description=command.description,
            formatter_class=_Formatter,
            allow_abbrev=False,
        )
        groups: dict[str, Any] = {}
        for key in command.options:
            option = OPTIONS[key]
            if option.group not in groups:
                groups[option.group] = sub.add_argument_group(option.group)
            settings = {**option.options, **command.overrides.get(key, {})}
            groups[option.group].add_argument(option.flag, dest=key, **settings)
        if command.extra is not None:
            command.extra(sub)
        sub.set_defaults(handler=name)
    return parser


# --------------------------------------------------------------------------- entry point
def _error(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``neural-kmeans`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a usage error, 1 for an unexpected
        error, 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
            check_optional_dependencies(args)
        except UsageError as error:
            _error(str(error))
            return 2
        except SystemExit as exit_:  # --help, --version
            return exit_.code if isinstance(exit_.code, int) else 0
        if args.command is None:
            _error(f"choose a command: {', '.join(COMMANDS)} (see '{PROG} --help')")
            return 2
        configure_runtime()
        with warnings.catch_warnings(record=True) as caught:  # imports' warnings among them
            warnings.simplefilter("always")
            return _run_command(args, argv, caught)
    except KeyboardInterrupt:  # Ctrl-C while the libraries load, or while cleaning up
        _error("interrupted")
        return 130


def check_optional_dependencies(args: argparse.Namespace) -> None:
    """Refuse, before any work (no data loaded, no torch imported, no folder made), a
    method whose optional dependency is not installed (the learned mode's umap-learn):
    a UsageError with the install command."""
    import importlib.util

    for flag in ("method", "methods"):
        named = getattr(args, flag, None)
        named = named if isinstance(named, list) else [named]
        if "learned" in named and importlib.util.find_spec("umap") is None:
            raise UsageError(
                f"--{flag} learned needs umap-learn: pip install 'neural-kmeans[learned]' "
                "(or pip install umap-learn)"
            )


def configure_runtime() -> None:
    """Settings for the libraries this process is about to load (before torch is imported).

    Idle OpenMP threads sleep instead of spinning, unless the user chose otherwise: with
    spinning threads, a CPU that other programs keep busy slows each small parallel
    region down to a scheduler time slice (measured: the CNN's inference ran 3.6x
    slower on a busy 2-core machine). The library itself never changes the environment;
    Python users choose with ``OMP_WAIT_POLICY`` themselves.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _report_warnings(caught: list[warnings.WarningMessage]) -> None:
    """The warnings of a command, once each, one line each (at most three), after its
    results; libraries' own formatting (file, line, source) is left out."""
    seen = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    for message in seen[:3]:
        print(f"warning: {message}", file=sys.stderr)
    if len(seen) > 3:
        print(f"warning: and {len(seen) - 3} more", file=sys.stderr)


def _run_command(
    args: argparse.Namespace, argv: list[str], caught: list[warnings.WarningMessage]
) -> int:
    """Import what the command needs (torch among it), run it, and turn its errors into
    exit statuses; the ``caught`` warnings are shown after the results (never with
    ``--quiet``, nor after an error, whose one line is then all there is)."""
    from neural_kmeans.app import commands
    from neural_kmeans.app.outputs import crash_log
    from neural_kmeans.app.progress import ConsoleReporter
    from neural_kmeans.core import distributed
    from neural_kmeans.core.validation import InvalidParameterError
    from neural_kmeans.io.checkpoint import CheckpointError, FitInterrupted
    from neural_kmeans.io.model_file import ModelFileError

    reporter = ConsoleReporter(quiet=getattr(args, "quiet", False))
    context: dict[str, Any] = {"argv": argv, "out": None, "reporter": reporter}
    handler: Callable[[argparse.Namespace, dict[str, Any]], int] = getattr(
        commands, f"cmd_{args.handler}"
    )
    user_errors = (UsageError, InvalidParameterError, ModelFileError, CheckpointError)
    try:
        if args.command == "run":
            distributed.init_from_environment()
        status = handler(args, context)
        if context.get("outputs") is not None:
            context["outputs"].commit()
        if not getattr(args, "quiet", False):
            _report_warnings(caught)
        return status
    except (*user_errors, ValueError, TypeError) as error:  # the user's data or options
        return _failed(context, reporter, str(_cli_words(error)), 2)
    except FitInterrupted as error:
        message = (
            f"interrupted; the checkpoint of iteration {error.iteration} is in "
            f"{error.checkpoint_dir}: run the same command with --resume "
            f"{error.checkpoint_dir} (and another --out) to continue"
        )
        return _failed(context, reporter, message, 130)
    except FloatingPointError as error:  # the network diverged: a learning-rate problem
        return _failed(context, reporter, f"{error} (try a smaller --learning-rate)", 2)
    except KeyboardInterrupt:
        return _failed(context, reporter, "interrupted", 130)
    except OSError as error:  # disk full, permissions, a vanished file
        where = f" ({error.filename})" if error.filename else ""
        if context.get("outputs") is not None:  # the file's final name, not its staging
            outputs = context["outputs"]
            where = where.replace(str(outputs.staging), str(outputs.path))
        message = (
            f"{error.strerror or error}{where}: free some space, or choose a place you can write"
        )
        return _failed(context, reporter, message, 2)
    except Exception as error:
        log = crash_log(error, context.get("out") if context.get("outputs") else None)
        where = f"; traceback in {log}" if log else ""
        message = f"unexpected {type(error).__name__}: {error}{where}"
        return _failed(context, reporter, message, 1)
    finally:
        distributed.leave()


def _failed(context: dict[str, Any], reporter: Any, message: str, status: int) -> int:
    """Close the progress bars, leave nothing of the outputs behind (but an error log),
    and print the one error line."""
    reporter.close()
    if context.get("outputs") is not None:
        context["outputs"].abandon()
    _error(message)
    return status


#: The library's words for its options, as the command line names them.
_CLI_WORDS = (
    ("resume=True", "--resume DIR"),
    ("checkpoint_dir", "--checkpoint"),
    ("learning_rate", "--learning-rate"),
    ("n_clusters", "--clusters"),
    ("max_iter", "--max-iter"),
    ("steps_per_iter", "--steps-per-iter"),
    ("neural_kmeans.io.checkpoint.remove_checkpoint", "delete its checkpoint.safetensors"),
)


def _cli_words(error: BaseException) -> str:
    text = str(error)
    for python, option in _CLI_WORDS:
        text = text.replace(python, option)
    return text


if __name__ == "__main__":
    sys.exit(main())
