"""The ``neural-kmeans`` command line: run, compare, sweep, reproduce and animate.

A thin argparse layer: the protocols live in :mod:`neural_kmeans.experiments`, the
figures in :mod:`neural_kmeans.plotting` and :mod:`neural_kmeans.animation`
(imported only when figures are drawn), the reports in :mod:`neural_kmeans.report`.

Exit status: 0 on success, 2 for an error the user can fix (one ``error: ...`` line
on standard error), 1 for an unexpected error (one line, the traceback in a log
file), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from neural_kmeans import distributed
from neural_kmeans import experiments as ex
from neural_kmeans.checkpoint import CheckpointError, FitInterrupted
from neural_kmeans.metrics import METRIC_NAMES
from neural_kmeans.networks import LEARNED_NETWORK
from neural_kmeans.self_labelling import FEATURE_NAMES
from neural_kmeans.serialization import ModelFileError
from neural_kmeans.validation import InvalidParameterError

__all__ = ["build_parser", "main"]

PROG = "neural-kmeans"
SEED_CLUSTERS = (2, 5, 8, 10, 15, 20)
NETWORK_CHOICES = ("auto", "cnn", "mlp", "linear", "nearest-centroid")
INIT_CHOICES = ("random", "k-means++")
QUICK = {"subset": 2000, "test_subset": 500, "max_iter": 3}


class CommandLineError(ex.UsageError):
    """A malformed command line (unknown option, bad value)."""


# --------------------------------------------------------------------------- argument types


def _number(
    text: str,
    convert: Callable[[str], Any],
    valid: Callable[[Any], bool],
    expected: str,
    out_of_range: str | None = None,
) -> Any:
    """``text`` parsed with ``convert`` and checked with ``valid``.

    Errors read "expected <expected>, got '<text>'"; ``out_of_range``, when given,
    replaces ``expected`` for a number that parses but is not valid.
    """
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not valid(value):
        raise argparse.ArgumentTypeError(f"expected {out_of_range or expected}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _number(text, int, lambda value: value >= 1, "a positive integer")


def _seed(text: str) -> int:
    return _number(
        text,
        int,
        lambda value: 0 <= value < 2**32,
        "a seed (integer >= 0)",
        out_of_range="a seed between 0 and 2**32-1",
    )


def _non_negative_int(text: str) -> int:
    return _number(text, int, lambda value: value >= 0, "an integer >= 0")


def _positive_float(text: str) -> float:
    return _number(text, float, lambda value: value > 0 and np.isfinite(value), "a positive number")


def _fraction(text: str) -> float:
    return _number(text, float, lambda value: 0.0 <= value <= 1.0, "a number in [0, 1]")


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


def _add_data_options(parser: argparse.ArgumentParser, default: str, *, files: bool = True) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset",
        default=default,
        metavar="NAME|PATH",
        help="digits, mnist, fashion-mnist, blobs, moons, circles, or the path of a .npy, "
        ".npz or .csv file or of an image folder (one sub-folder per class)",
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding mnist/ and fashion-mnist/ IDX files (else $NEURAL_KMEANS_DATA, "
        "the cache, or a download)",
    )
    if files:
        group.add_argument(
            "--label-column",
            metavar="COLUMN",
            help="name or index of the label column of a CSV file (default: no labels)",
        )


def _add_model_options(
    parser: argparse.ArgumentParser, *, network: bool = True, features: bool = True
) -> None:
    group = parser.add_argument_group("neural-kmeans")
    if features:
        group.add_argument(
            "--features",
            choices=FEATURE_NAMES,
            default="pixels",
            help="the space the loop runs in: pixels (the samples themselves, the faithful "
            "loop) or learned (autoencoder + UMAP, self-labelled network; needs umap-learn: "
            "pip install 'neural-kmeans[learned]'); the options below apply to pixels"
            + ("" if network else "; compare: adds neural-kmeans:learned to the default methods"),
        )
    if network:
        group.add_argument(
            "--network",
            choices=NETWORK_CHOICES,
            default="auto",
            help="the classifier trained on the centroids; auto = cnn for images, mlp for "
            "rows; nearest-centroid makes the loop exactly Lloyd's K-means",
        )
    group.add_argument(
        "--init",
        choices=INIT_CHOICES,
        default="k-means++",
        help="first centroids: K distinct random samples, or k-means++ seeding",
    )
    group.add_argument(
        "--max-iter", type=_positive_int, default=20, metavar="N", help="most iterations"
    )
    group.add_argument(
        "--steps-per-iter",
        type=_positive_int,
        default=10,
        metavar="N",
        help="gradient steps on the centroids per iteration (the notebook's code took 1)",
    )
    group.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=None,
        metavar="LR",
        help="optimiser step size (default: 1e-3 for the CNN, 1e-2 for the other networks)",
    )
    group.add_argument(
        "--tol",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="stop when at most this fraction of the samples changed cluster",
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="inference batch size (default: 256 for the CNN on a CPU, else 4096)",
    )
    group.add_argument(
        "--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N"
    )


def _add_runtime_options(
    parser: argparse.ArgumentParser, out_help: str, *, out_metavar: str = "DIR"
) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--out", metavar=out_metavar, help=out_help)
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an existing, non-empty --out (replacing files of the same names)",
    )
    group.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar nor per-iteration log lines (results are still printed)",
    )
    group.add_argument(
        "--threads",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="CPU threads; 0 = automatic: 1 for small data (where threads only cost), "
        "else PyTorch's default",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``neural-kmeans`` argument parser with its five subcommands."""
    from neural_kmeans import __version__

    parser = _Parser(
        prog=PROG,
        description="Clustering with a neural network in place of K-means' distance step: "
        "each iteration trains a classifier on the K centroids, gives every sample its "
        "predicted class, and moves each centroid to the mean of its members.",
        epilog="examples:\n"
        f"  {PROG} run                                 # digits, in seconds, offline\n"
        f"  {PROG} run --dataset mnist --clusters 10 --out runs/mnist\n"
        f"  {PROG} compare --dataset digits --seeds 0 1 2\n"
        f"  {PROG} sweep --dataset digits --clusters 2 5 8 10 15 20\n"
        f"  {PROG} reproduce --data-dir ../shared/data  # the seed notebook on MNIST\n"
        f"  {PROG} animate --dataset moons --compare-kmeans --out moons.gif\n\n"
        f"'{PROG} COMMAND --help' explains each command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=summary, description=description, formatter_class=_Formatter
        )

    run = command(
        "run",
        "one clustering run, with K-means for comparison",
        "Fit neural-kmeans on the training split (all of the data when there is no split), "
        "score it on train and, when the data set has one, on test (through predict), and "
        "run scikit-learn's KMeans on the same data.\n\n"
        "Writes into --out: results.json; labels.npy (the fitted clusters); history.png "
        "(loss, fraction changed, inertia per iteration); confusion.png (clusters against "
        "labels, when there are labels); for "
        "images centroids/iter_000.png ... (the K centroids at each iteration; 000 = the "
        "initial ones) and centroids.gif; for 2-D rows clusters.png.",
    )
    _add_data_options(run, "digits")
    run.add_argument(
        "--clusters",
        type=_positive_int,
        metavar="K",
        help="number of clusters (default: the number of classes, when there are labels)",
    )
    run.add_argument("--seed", type=_seed, default=0, help="random seed of both methods")
    _add_model_options(run)
    baseline = run.add_argument_group("K-means baseline")
    baseline.add_argument("--no-baseline", action="store_true", help="skip scikit-learn KMeans")
    baseline.add_argument(
        "--kmeans-max-iter",
        type=_positive_int,
        default=300,
        metavar="N",
        help="most iterations of KMeans (n_init=1)",
    )
    _add_runtime_options(run, "output folder (default: a new folder runs/<dataset>-<time>)")
    saving = run.add_argument_group("saving and resuming")
    saving.add_argument(
        "--save",
        metavar="FILE",
        help="write the fitted model to FILE (e.g. model.nkm; no pickle: safetensors + JSON), "
        "for 'neural-kmeans predict'",
    )
    saving.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="write the loop's state to DIR after every iteration; Ctrl-C or SIGTERM then "
        "stops cleanly after the current iteration",
    )
    saving.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the fit checkpointed in DIR (give the same data and options again)",
    )
    run.set_defaults(handler=_cmd_run)

    predict = command(
        "predict",
        "clusters of new samples with a saved model",
        "Load a model written by 'run --save' and write the cluster of every sample of "
        "--input to --out (a .npy file of integers). With labelled data the metrics are "
        "printed too.",
    )
    predict.add_argument("--model", required=True, metavar="FILE", help="a saved model")
    predict.add_argument(
        "--input",
        required=True,
        metavar="DATA",
        help="a data set name or a .npy/.npz/.csv file or image folder",
    )
    predict.add_argument(
        "--split", default="test", help="split of a named data set with one (default: test)"
    )
    predict.add_argument("--data-dir", metavar="DIR", help="folder holding mnist/ etc.")
    predict.add_argument(
        "--device", default=None, help="run the model here (default: as saved; auto = CUDA)"
    )
    predict.add_argument("--out", required=True, metavar="FILE", help="where to write labels")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    predict.add_argument("--quiet", action="store_true", help="print nothing but errors")
    predict.set_defaults(handler=_cmd_predict)

    compare = command(
        "compare",
        "methods x seeds: mean ± std of every metric",
        "Fit every method with every seed on one data set and report each metric and the "
        "fit's wall seconds as mean ± standard deviation over the seeds, on the test split "
        "when there is one (else on the data fitted).\n\n"
        "Writes compare.json and compare.md into --out.",
    )
    _add_data_options(compare, "digits")
    compare.add_argument(
        "--clusters", type=_positive_int, metavar="K", help="number of clusters (default: classes)"
    )
    compare.add_argument(
        "--seeds", type=_seed, nargs="+", default=[0, 1, 2], metavar="SEED", help="random seeds"
    )
    compare.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        help="methods to compare: neural-kmeans:<network> (cnn, mlp, linear, "
        "nearest-centroid) and kmeans (default: every network that fits the data, and kmeans)",
    )
    _add_model_options(compare, network=False)
    compare.add_argument(
        "--kmeans-max-iter", type=_positive_int, default=300, metavar="N", help="KMeans max_iter"
    )
    _add_runtime_options(compare, "output folder (default: runs/compare-<dataset>-<time>)")
    compare.set_defaults(handler=_cmd_compare)

    sweep = command(
        "sweep",
        "every metric against the number of clusters K",
        "Fit neural-kmeans and scikit-learn KMeans at every K and score them (test split "
        "when there is one).\n\n"
        "Writes sweep.json, sweep.md and one PNG per metric, sweep_<metric>.png, with both "
        "methods on it.",
    )
    _add_data_options(sweep, "digits")
    sweep.add_argument(
        "--clusters",
        type=_positive_int,
        nargs="+",
        default=list(SEED_CLUSTERS),
        metavar="K",
        help="the values of K (the seed notebook's list by default)",
    )
    sweep.add_argument(
        "--seeds", type=_seed, nargs="+", default=[0], metavar="SEED", help="random seeds"
    )
    _add_model_options(sweep)
    sweep.add_argument(
        "--kmeans-max-iter", type=_positive_int, default=300, metavar="N", help="KMeans max_iter"
    )
    _add_runtime_options(sweep, "output folder (default: runs/sweep-<dataset>-<time>)")
    sweep.set_defaults(handler=_cmd_sweep)

    reproduce = command(
        "reproduce",
        "the seed notebook's protocol on MNIST, with a report",
        "The seed notebook's whole protocol: K-means (max_iter=30) and the notebook's CNN "
        "(random initial centroids, 20 iterations) with one Adam step per iteration (the "
        "notebook's code) and with ten (what its figures reflect), each fitted on the "
        "60,000 training images and scored on the 10,000 test images, over --seeds; then "
        "the K sweep (K-means and the 10-step CNN, first seed only).\n\n"
        "Writes into --out: reproduce.json, report.md (our numbers beside the notebook's), "
        "centroids/ and centroids.gif (10 steps), centroids-1-step/ and centroids-1-step.gif, "
        "history.png, confusion.png and sweep_<metric>.png. The full run takes about half "
        "an hour on a CPU; --quick runs a tiny version (2,000 train / 500 test images, "
        "3 iterations) to check that everything works.",
    )
    _add_data_options(reproduce, "mnist", files=False)
    reproduce.add_argument(
        "--seeds", type=_seed, nargs="+", default=[0, 1, 2], metavar="SEED", help="random seeds"
    )
    reproduce.add_argument(
        "--clusters",
        type=_positive_int,
        nargs="*",
        default=list(SEED_CLUSTERS),
        metavar="K",
        help="the K sweep (give no value to skip it)",
    )
    reproduce.add_argument(
        "--max-iter",
        type=_positive_int,
        metavar="N",
        help="iterations of the CNN loop (default 20; 3 with --quick)",
    )
    reproduce.add_argument(
        "--kmeans-max-iter", type=_positive_int, default=30, metavar="N", help="KMeans max_iter"
    )
    reproduce.add_argument(
        "--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N"
    )
    small = reproduce.add_argument_group("smaller runs (not comparable with the notebook)")
    small.add_argument(
        "--quick",
        action="store_true",
        help="tiny run: --subset 2000 --test-subset 500 --max-iter 3 unless given",
    )
    small.add_argument(
        "--subset", type=_positive_int, metavar="N", help="use N random training images"
    )
    small.add_argument(
        "--test-subset", type=_positive_int, metavar="N", help="use N random test images"
    )
    _add_runtime_options(reproduce, "output folder (default: runs/reproduce-<dataset>-<time>)")
    reproduce.set_defaults(handler=_cmd_reproduce)

    animate = command(
        "animate",
        "animated GIF/MP4 of the algorithm on 2-D data",
        "On 2-D samples (moons, blobs, circles or a 2-D file), draw at each iteration the "
        "network's decision regions, the samples coloured by cluster and the centroids "
        "moving (with their trails); frame 0 shows the initial centroids. "
        "--compare-kmeans adds K-means (Lloyd's algorithm, from the same initial "
        "centroids) side by side.\n\n"
        "Writes --out: a .gif (Pillow), or an .mp4 when ffmpeg is installed.",
    )
    _add_data_options(animate, "moons")
    animate.add_argument(
        "--n-samples", type=_positive_int, metavar="N", help="samples of a toy data set (1500)"
    )
    animate.add_argument(
        "--noise", type=_positive_float, metavar="SD", help="noise of moons/circles (0.05)"
    )
    animate.add_argument(
        "--clusters", type=_positive_int, metavar="K", help="number of clusters (default: classes)"
    )
    animate.add_argument("--seed", type=_seed, default=0, help="random seed")
    _add_model_options(animate, features=False)
    drawing = animate.add_argument_group("drawing")
    drawing.add_argument("--compare-kmeans", action="store_true", help="draw K-means side by side")
    drawing.add_argument("--fps", type=_positive_float, default=2.0, help="frames per second")
    drawing.add_argument(
        "--resolution",
        type=_positive_int,
        default=150,
        metavar="N",
        help="grid points per axis of the decision regions",
    )
    _add_runtime_options(
        animate,
        "the animation file, .gif or .mp4 (default: a new runs/<dataset>-<time>.gif)",
        out_metavar="FILE",
    )
    animate.set_defaults(handler=_cmd_animate)
    return parser


# --------------------------------------------------------------------------- progress


class ConsoleReporter(ex.Reporter):
    """Progress on standard error: a tqdm bar on a terminal, else one line per iteration.

    Parameters
    ----------
    quiet : bool
        Print nothing.
    stream : text stream, optional
        Where to write (default: ``sys.stderr`` at the time of each write).
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self._stream = stream
        self._bar: Any = None

    @property
    def stream(self) -> TextIO:
        """The stream written to."""
        return self._stream or sys.stderr

    @property
    def interactive(self) -> bool:
        """Whether to draw progress bars (not quiet, and the stream is a terminal)."""
        isatty = getattr(self.stream, "isatty", None)
        return not self.quiet and bool(isatty and isatty())

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def start_fit(self, label: str, max_iter: int) -> ex.Callback | None:
        if self.quiet:
            return None
        if max_iter == 0:
            self.message(f"[{label}] fitting")
            return None
        if self.interactive:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=max_iter, desc=label, unit="iter", file=self.stream, leave=False)
            bar = self._bar

            def update(iteration: int, record: dict, model: Any) -> bool:
                bar.set_postfix_str(
                    f"loss {record['loss']:.4f}, changed {record['changed']:.4f}, "
                    f"inertia {record['inertia']:.5g}",
                    refresh=False,
                )
                bar.update(1)
                return False

            return update

        def log(iteration: int, record: dict, model: Any) -> bool:
            self.message(
                f"[{label}] iteration {iteration}/{max_iter}  loss {record['loss']:.4f}  "
                f"changed {record['changed']:.4f}  inertia {record['inertia']:.6g}  "
                f"({record['seconds']:.2f} s)"
            )
            return False

        return log

    def end_fit(self, label: str, run: ex.MethodRun | None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.quiet or run is None:
            return
        split = "test" if run.test is not None else "train"
        scores = getattr(run, split)
        score = "" if scores is None else f", {split} acc {scores['acc']:.3f}"
        self.message(
            f"[{label}] done: {run.n_iter} iterations in {run.seconds:.2f} s, "
            f"inertia {run.inertia:.6g}{score}"
        )

    def close(self) -> None:
        """Close a progress bar left open (after an error)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# --------------------------------------------------------------------------- helpers


def _slug(text: str) -> str:
    name = Path(text).stem if ("/" in text or os.sep in text or "." in text) else text
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "data"


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def _new_path(base: Path, suffix: str = "") -> Path:
    candidate = base.with_name(base.name + suffix)
    number = 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{number}{suffix}")
        number += 1
    return candidate


def check_out_dir(out: str | None, default_name: str, overwrite: bool) -> Path:
    """The output folder to use, checked but not created (see :func:`make_out_dir`).

    Never a non-empty existing folder unless ``overwrite``.

    Parameters
    ----------
    out : str or None
        The user's ``--out``; None for a new folder ``runs/<default_name>-<time>``.
    default_name : str
    overwrite : bool

    Returns
    -------
    Path

    Raises
    ------
    UsageError
        When ``out`` is a file or a non-empty folder (without ``overwrite``).
    """
    if out is None:
        path = _new_path(Path("runs") / f"{default_name}-{_timestamp()}")
    else:
        path = Path(out).expanduser()
        if path.exists() and not path.is_dir():
            raise ex.UsageError(f"--out {str(path)!r} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise ex.UsageError(
                f"--out {str(path)!r} exists and is not empty; choose another folder or "
                "pass --overwrite to write into it"
            )
    return path


def make_out_dir(path: Path, context: dict[str, Any]) -> Path:
    """Create the output folder (once the inputs are known to be good) and note it for
    the error log.

    Raises
    ------
    UsageError
        When the folder cannot be made.
    """
    if not path.exists() and path.parent == Path("runs"):
        path = _new_path(path)  # another run took the name meanwhile
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ex.UsageError(f"cannot create the output folder {str(path)!r}: {error}") from None
    context["out"] = path
    return path


def check_out_file(out: str | None, default_name: str, overwrite: bool) -> Path:
    """The output file's path, checked: never an existing file unless ``overwrite``."""
    if out is None:
        path = _new_path(Path("runs") / f"{default_name}-{_timestamp()}", ".gif")
    else:
        path = Path(out).expanduser()
        if path.is_dir():
            raise ex.UsageError(f"--out {str(path)!r} is a folder; give a file name")
        if path.exists() and not overwrite:
            raise ex.UsageError(
                f"--out {str(path)!r} exists; choose another name or pass --overwrite"
            )
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json(document: Any, path: Path) -> Path:
    """Write ``document`` as indented JSON (numpy scalars and arrays converted)."""
    path.write_text(json.dumps(document, indent=2, default=_json_default) + "\n")
    return path


def _command_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in [PROG, *argv])


def _load(args: argparse.Namespace, **options: Any) -> ex.DataSplit:
    return ex.load_data(
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
        "batch_size": args.batch_size,
        "device": ex.check_device(args.device),
        "features": getattr(args, "features", "pixels"),
    }
    values.update(overrides)
    return ex.NeuralConfig(**values)


def _check_network(network: str, data: ex.DataSplit) -> None:
    if network != "cnn":
        return
    shape = data.image_shape
    if shape is None and data.n_features == 28 * 28:
        return
    if shape is None:
        raise ex.UsageError(
            f"--network cnn needs images; {data.name} holds rows of {data.n_features} "
            "features: use --network mlp"
        )
    if min(shape[-2:]) < 8:
        raise ex.UsageError(
            f"--network cnn needs images of at least 8x8 pixels; {data.name} has "
            f"{shape[-2]}x{shape[-1]}: use --network mlp"
        )


def _network_name(network: str, data: ex.DataSplit) -> str:
    """The network ``auto`` stands for on ``data`` (cnn for images, mlp for rows)."""
    if network != "auto":
        return network
    images = data.image_shape is not None or data.n_features == 28 * 28
    return "cnn" if images else "mlp"


def _plotting(reporter: ConsoleReporter) -> Any:
    """The plotting module, or None (with a warning) when matplotlib is missing."""
    try:
        from neural_kmeans import plotting
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
    document["versions"] = ex.versions()


# --------------------------------------------------------------------------- commands


def _cmd_run(args: argparse.Namespace, context: dict[str, Any]) -> int:
    reporter = context["reporter"]
    out = check_out_dir(args.out, _slug(args.dataset), args.overwrite)
    data = _load(args)
    k = ex.resolve_clusters(data, args.clusters)
    _check_network(args.network, data)
    if args.checkpoint and args.resume and Path(args.checkpoint) != Path(args.resume):
        raise ex.UsageError("give --checkpoint DIR or --resume DIR, not two different folders")
    save_path = None if args.save is None else _check_save_path(args.save, args.overwrite)
    config = _neural_config(
        args, checkpoint_dir=args.resume or args.checkpoint, resume=bool(args.resume)
    )
    # Under torchrun every process fits its shard; process 0 alone writes and reports.
    rank, world_size = distributed.rank_and_size()
    if world_size > 1 and config.features == "learned":
        raise ex.UsageError("--features learned runs in one process: start it without torchrun")
    leader = rank == 0
    if not leader:
        reporter = ConsoleReporter(quiet=True)
    else:
        out = make_out_dir(out, context)
    threads = ex.resolve_threads(args.threads, data.x_train.size)
    methods = [ex.NEURAL] if args.no_baseline or not leader else [ex.NEURAL, ex.KMEANS]
    runs: dict[str, ex.MethodRun] = {}
    with ex.thread_limit(threads):
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
        raise ex.UsageError(f"--save {path!r} is a folder; give a file name such as model.nkm")
    if target.exists() and not overwrite:
        raise ex.UsageError(f"--save {path!r} exists; choose another name or pass --overwrite")
    if not target.parent.is_dir():
        raise ex.UsageError(f"--save {path!r}: the folder {str(target.parent)!r} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise ex.UsageError(f"--save {path!r}: the folder {str(target.parent)!r} is not writable")
    return target


def _cmd_predict(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans.estimator import NeuralKMeans
    from neural_kmeans.metrics import evaluate

    out = check_out_file(args.out, "labels", args.overwrite)
    if not Path(args.model).is_file():
        raise ex.UsageError(f"--model {args.model!r}: no such file")
    model = NeuralKMeans.load(args.model, device=args.device)
    data = ex.load_data(args.input, args.data_dir)
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


def _cmd_compare(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans import report

    reporter = context["reporter"]
    out = check_out_dir(args.out, f"compare-{_slug(args.dataset)}", args.overwrite)
    data = _load(args)
    k = ex.resolve_clusters(data, args.clusters)
    defaults = ex.available_methods(data)
    if args.features == "learned":
        defaults.insert(-1, ex.LEARNED)  # before kmeans
    methods = ex.check_methods(data, args.methods or defaults)
    config = _neural_config(args)
    out = make_out_dir(out, context)
    threads = ex.resolve_threads(args.threads, data.x_train.size)
    with ex.thread_limit(threads):
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


def _cmd_sweep(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans import report

    reporter = context["reporter"]
    out = check_out_dir(args.out, f"sweep-{_slug(args.dataset)}", args.overwrite)
    data = _load(args)
    clusters = list(dict.fromkeys(args.clusters))
    for k in clusters:
        ex.resolve_clusters(data, k)
    _check_network(args.network, data)
    config = _neural_config(args)
    out = make_out_dir(out, context)
    methods = [ex.NEURAL, ex.KMEANS]
    threads = ex.resolve_threads(args.threads, data.x_train.size)
    with ex.thread_limit(threads):
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


def _cmd_reproduce(args: argparse.Namespace, context: dict[str, Any]) -> int:
    from neural_kmeans import report

    reporter = context["reporter"]
    out = check_out_dir(args.out, f"reproduce-{_slug(args.dataset)}", args.overwrite)
    subset = args.subset if args.subset is not None else (QUICK["subset"] if args.quick else None)
    test_subset = args.test_subset
    if test_subset is None and args.quick:
        test_subset = QUICK["test_subset"]
    max_iter = args.max_iter or (QUICK["max_iter"] if args.quick else 20)
    data = _load(args, train_subset=subset, test_subset=test_subset)
    if data.x_test is None:
        raise ex.UsageError(
            f"reproduce needs a data set with a test split (mnist, fashion-mnist); "
            f"{data.name} has none"
        )
    _check_network("cnn", data)
    clusters = list(dict.fromkeys(args.clusters))
    device = ex.check_device(args.device)
    for k in [10, *clusters]:
        ex.resolve_clusters(data, k)
    out = make_out_dir(out, context)
    threads = ex.resolve_threads(args.threads, data.x_train.size)
    with ex.thread_limit(threads):
        document, first = ex.reproduce_protocol(
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
    versions = ex.versions()
    document["config"] = {
        "dataset": args.dataset,
        "quick": args.quick,
        "subset": subset,
        "test_subset": test_subset,
        "device": device,
        "threads": threads,
        "command": _command_line(context["argv"]),
    }
    document["versions"] = versions
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
        versions=versions,
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


def _cmd_animate(args: argparse.Namespace, context: dict[str, Any]) -> int:
    reporter = context["reporter"]
    try:
        from neural_kmeans import animation
    except ImportError as error:
        raise ex.UsageError(
            f"animate needs matplotlib ({error}): pip install 'neural-kmeans[plot]'"
        ) from None
    path = check_out_file(args.out, f"{_slug(args.dataset)}-animation", args.overwrite)
    ok, reason = animation.can_write(path)
    if not ok:
        raise ex.UsageError(reason)
    data = _load(args, n_samples=args.n_samples, noise=args.noise)
    if data.x_train.ndim != 2 or data.x_train.shape[1] != 2:
        raise ex.UsageError(
            f"animate needs 2-D samples; {data.name} has samples of shape "
            f"{tuple(data.x_train.shape[1:])}"
        )
    k = ex.resolve_clusters(data, args.clusters)
    _check_network(args.network, data)
    config = _neural_config(args)
    x = data.rows("train")
    threads = ex.resolve_threads(args.threads, x.size)

    def trace(method: str, settings: ex.NeuralConfig, **options: Any) -> tuple[ex.Trajectory, Any]:
        label = f"{method} K={k} seed={args.seed}"
        callback = reporter.start_fit(label, config.max_iter)
        traced = ex.trace_2d(
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

    with ex.thread_limit(threads):
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
        raise ex.UsageError(f"cannot create the folder of {str(path)!r}: {error}") from None
    reporter.message(f"drawing {animation.n_frames(trajectories)} frames")
    animation.animate_trajectories(trajectories, x, path, fps=args.fps, title=f"{data.name}, K={k}")
    summary = ", ".join(
        f"{t.title}: {t.n_iter} iterations{' (converged)' if t.converged else ''}"
        for t in trajectories
    )
    print(f"{summary}\nanimation written to {path} ({animation.n_frames(trajectories)} frames)")
    return 0


# --------------------------------------------------------------------------- entry point


def _error(message: str) -> None:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def _crash_log(error: BaseException, out: Path | None) -> Path | None:
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        if out is not None and out.is_dir():
            path = out / "error.log"
        else:
            handle, name = tempfile.mkstemp(prefix="neural-kmeans-error-", suffix=".log")
            os.close(handle)
            path = Path(name)
        path.write_text(text)
    except OSError:
        return None
    return path


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
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ex.UsageError as error:
        _error(str(error))
        return 2
    except SystemExit as exit_:  # --help, --version
        return exit_.code if isinstance(exit_.code, int) else 0
    if args.command is None:
        _error(f"choose a command: run, compare, sweep, reproduce or animate (see '{PROG} --help')")
        return 2
    reporter = ConsoleReporter(quiet=args.quiet)
    context: dict[str, Any] = {"argv": argv, "out": None, "reporter": reporter}
    handler: Callable[[argparse.Namespace, dict[str, Any]], int] = args.handler
    try:
        if args.command == "run":
            distributed.init_from_environment()
        return handler(args, context)
    except ex.UsageError as error:
        reporter.close()
        _error(str(error))
        return 2
    except (InvalidParameterError, ModelFileError, CheckpointError) as error:
        reporter.close()
        _error(str(error))
        return 2
    except FitInterrupted as error:
        reporter.close()
        print(
            f"neural-kmeans: interrupted; the checkpoint of iteration {error.iteration} is in "
            f"{error.checkpoint_dir}. To continue, run the same command with "
            f"--resume {error.checkpoint_dir} (and another --out).",
            file=sys.stderr,
        )
        return 130
    except FloatingPointError as error:  # the network diverged: a learning-rate problem
        reporter.close()
        _error(f"{error} (try a smaller --learning-rate)")
        return 2
    except KeyboardInterrupt:
        reporter.close()
        _error("interrupted")
        return 130
    except Exception as error:
        reporter.close()
        log = _crash_log(error, context["out"])
        where = f"; traceback in {log}" if log else ""
        _error(f"unexpected {type(error).__name__}: {error}{where}")
        return 1
    finally:
        distributed.leave()


if __name__ == "__main__":
    sys.exit(main())
