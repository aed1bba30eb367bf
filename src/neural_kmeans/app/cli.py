"""The ``neural-kmeans`` command line: run, compare, sweep, reproduce and animate.

A thin argparse layer: the protocols live in :mod:`neural_kmeans.app.experiments`, the
figures in :mod:`neural_kmeans.app.plotting` and :mod:`neural_kmeans.app.animation`
(imported only when figures are drawn), the reports in :mod:`neural_kmeans.app.report`.

Exit status: 0 on success, 2 for an error the user can fix (one ``error: ...`` line
on standard error), 1 for an unexpected error (one line, the traceback in a log
file), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from neural_kmeans.app.errors import CommandLineError, UsageError

__all__ = ["build_parser", "main"]

PROG = "neural-kmeans"
SEED_CLUSTERS = (2, 5, 8, 10, 15, 20)
COMMAND_NAMES = ("run", "predict", "compare", "sweep", "reproduce", "animate", "serve")
NETWORK_CHOICES = ("auto", "cnn", "mlp", "linear", "nearest-centroid")
INIT_CHOICES = ("random", "k-means++")
FEATURE_CHOICES = ("pixels", "learned")


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
    return _number(
        text, float, lambda value: value > 0 and math.isfinite(value), "a positive number"
    )


def _non_negative_float(text: str) -> float:
    return _number(text, float, lambda value: value >= 0 and math.isfinite(value), "a number >= 0")


def _n_init(text: str) -> str | int:
    return "auto" if text == "auto" else _number(text, int, lambda v: v >= 1, "auto or N >= 1")


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
            choices=FEATURE_CHOICES,
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
        "--max-iter",
        type=_positive_int,
        default=None,
        metavar="N",
        help="most iterations (default: 300 for nearest-centroid, as K-means; 20 for the "
        "trained networks, as the notebook)",
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
        type=_non_negative_float,
        default=1e-4,
        metavar="TOL",
        help="stop when no label changes, or when the centroids' squared moves add up to at "
        "most TOL times the data's mean variance per feature (scikit-learn's test)",
    )
    group.add_argument(
        "--n-init",
        type=_n_init,
        default="auto",
        metavar="N",
        help="runs from different first centroids, the lowest inertia kept; auto: 1 for "
        "k-means++, 10 for random (as scikit-learn)",
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
    _add_run(commands)
    _add_predict(commands)
    _add_compare(commands)
    _add_sweep(commands)
    _add_reproduce(commands)
    _add_animate(commands)
    _add_serve(commands)
    return parser


def _command(commands: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    return commands.add_parser(
        name, help=summary, description=description, formatter_class=_Formatter
    )


def _add_run(commands: Any) -> None:
    run = _command(
        commands,
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
    run.set_defaults(handler="run")


def _add_predict(commands: Any) -> None:
    predict = _command(
        commands,
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
    predict.set_defaults(handler="predict")


def _add_compare(commands: Any) -> None:
    compare = _command(
        commands,
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
    compare.set_defaults(handler="compare")


def _add_sweep(commands: Any) -> None:
    sweep = _command(
        commands,
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
    sweep.set_defaults(handler="sweep")


def _add_reproduce(commands: Any) -> None:
    reproduce = _command(
        commands,
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
    reproduce.set_defaults(handler="reproduce")


def _add_animate(commands: Any) -> None:
    animate = _command(
        commands,
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
    animate.set_defaults(handler="animate")


def _port(text: str) -> int:
    return _number(text, int, lambda value: 0 <= value <= 65535, "a port (0-65535; 0: any free)")


def _add_serve(commands: Any) -> None:
    serve = _command(
        commands,
        "serve",
        "a live playground in the browser",
        "Start a local web server and print its address: a page that runs the algorithm "
        "live on toy 2-D sets (add or remove points by clicking), digits, MNIST or "
        "Fashion-MNIST subsets (when their files are here), or an uploaded .npy/.npz/.csv "
        "file, next to K-means from the same initial centroids, and exports results.json, "
        "the GIF and the model. Everything is served locally (no CDN). Ctrl-C stops it.\n\n"
        "Needs the serve extra: pip install 'neural-kmeans[serve]'.",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; another than this machine's own only when you mean it "
        "(a warning is printed)",
    )
    serve.add_argument("--port", type=_port, default=8000, help="port (0: any free port)")
    serve.add_argument("--open", action="store_true", help="open the page in a browser")
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another name the page may be opened by (with --host 0.0.0.0, say), repeatable",
    )
    serve.add_argument(
        "--data-dir", metavar="DIR", help="folder holding mnist/ and fashion-mnist/ IDX files"
    )
    serve.add_argument(
        "--max-samples",
        type=_positive_int,
        default=20_000,
        metavar="N",
        help="most samples a page may cluster",
    )
    serve.add_argument(
        "--max-upload-mb", type=_positive_float, default=20.0, metavar="MB", help="largest upload"
    )
    serve.set_defaults(handler="serve", quiet=False)


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
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        _error(str(error))
        return 2
    except SystemExit as exit_:  # --help, --version
        return exit_.code if isinstance(exit_.code, int) else 0
    if args.command is None:
        choices = ", ".join(COMMAND_NAMES)
        _error(f"choose a command: {choices} (see '{PROG} --help')")
        return 2
    configure_runtime()
    return _run_command(args, argv)


def configure_runtime() -> None:
    """Settings for the libraries this process is about to load (before torch is imported).

    Idle OpenMP threads sleep instead of spinning, unless the user chose otherwise: with
    spinning threads, a CPU that other programs keep busy slows each small parallel
    region down to a scheduler time slice (measured: the CNN's inference ran 3.6x
    slower on a busy 2-core machine). The library itself never changes the environment;
    Python users choose with ``OMP_WAIT_POLICY`` themselves.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _run_command(args: argparse.Namespace, argv: list[str]) -> int:
    """Import what the command needs (torch among it), run it, and turn its errors into
    exit statuses."""
    from neural_kmeans.app import commands
    from neural_kmeans.app.outputs import crash_log
    from neural_kmeans.app.progress import ConsoleReporter
    from neural_kmeans.core import distributed
    from neural_kmeans.core.validation import InvalidParameterError
    from neural_kmeans.io.checkpoint import CheckpointError, FitInterrupted
    from neural_kmeans.io.model_file import ModelFileError

    reporter = ConsoleReporter(quiet=args.quiet)
    context: dict[str, Any] = {"argv": argv, "out": None, "reporter": reporter}
    handler: Callable[[argparse.Namespace, dict[str, Any]], int] = getattr(
        commands, f"cmd_{args.handler}"
    )
    try:
        if args.command == "run":
            distributed.init_from_environment()
        return handler(args, context)
    except (UsageError, InvalidParameterError, ModelFileError, CheckpointError) as error:
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
        log = crash_log(error, context["out"])
        where = f"; traceback in {log}" if log else ""
        _error(f"unexpected {type(error).__name__}: {error}{where}")
        return 1
    finally:
        distributed.leave()


if __name__ == "__main__":
    sys.exit(main())
